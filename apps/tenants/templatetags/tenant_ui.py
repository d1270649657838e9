"""Template helpers for the tenant console."""

from __future__ import annotations

from django import template

from apps.tenants.models import Membership
from apps.tenants.services import can_manage_membership

register = template.Library()


@register.filter
def manageable_by(target: Membership, actor: Membership | None) -> bool:
    """``{% if member|manageable_by:current_membership %}``: show change controls for this row?"""
    return can_manage_membership(actor=actor, target=target)
