"""Named reads for tenants and memberships."""

from __future__ import annotations

import re
from typing import Any

from django.db.models import Count, Q, QuerySet

from apps.tenants.models import SLUG_PATTERN, Membership, Tenant

_SLUG_RE = re.compile(rf"^{SLUG_PATTERN}$")


def membership_for_console(*, user: Any, slug: str) -> Membership | None:
    """The user's active membership in the tenant named by ``slug``, with the tenant.

    One query. ``None`` for a malformed or unknown slug and for non-members
    alike, so callers answer 404 without revealing which it was.
    """
    if not user.is_authenticated or not _SLUG_RE.match(slug):
        return None
    return (
        Membership.objects.select_related("tenant")
        .filter(tenant__slug=slug, user=user, status=Membership.Status.ACTIVE)
        .first()
    )


def tenants_for_user(*, user: Any) -> QuerySet[Tenant]:
    """Tenants the user is an active member of (the tenant switcher)."""
    if not user.is_authenticated:
        return Tenant.objects.none()
    return Tenant.objects.for_user(user).order_by("name")


def tenant_list_with_counts(*, search: str = "", status: str = "") -> QuerySet[Tenant]:
    """Platform list: every tenant with its active member count, in one query."""
    qs = Tenant.objects.annotate(
        member_count=Count("memberships", filter=Q(memberships__status=Membership.Status.ACTIVE)),
        invited_count=Count("memberships", filter=Q(memberships__status=Membership.Status.INVITED)),
    )
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("name", "pk")


def tenant_get(*, slug: str) -> Tenant | None:
    if not _SLUG_RE.match(slug):
        return None
    return Tenant.objects.filter(slug=slug).first()


def member_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.for_tenant(tenant).select_related("user").order_by("user__email")
