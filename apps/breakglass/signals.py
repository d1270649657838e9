"""Membership and role hooks: a member removed or disabled keeps no elevation (``departures.member_leaving``);
a role that gains an administrative permission ends its one-approval elevations (``departures.role_changed``).

Connected by ``BreakglassConfig.ready()``. Signals, because the services that remove
and disable members live in ``tenants``/``access``, which must not import break-glass.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_save, pre_delete
from django.dispatch import receiver

from apps.access.models import Role
from apps.breakglass.departures import member_leaving, role_changed
from apps.tenants.models import Membership


@receiver(pre_delete, sender=Membership, dispatch_uid="breakglass.member_removed")
def _member_removed(sender: type[Membership], instance: Membership, **kwargs: Any) -> None:
    member_leaving(tenant_id=instance.tenant_id, membership_id=instance.pk, reason="member removed")


@receiver(post_save, sender=Membership, dispatch_uid="breakglass.member_disabled")
def _member_disabled(sender: type[Membership], instance: Membership, created: bool, **kwargs: Any) -> None:
    if not created and instance.status == Membership.Status.DISABLED:
        member_leaving(tenant_id=instance.tenant_id, membership_id=instance.pk, reason="member disabled")


@receiver(post_save, sender=Role, dispatch_uid="breakglass.role_changed")
def _role_changed(sender: type[Role], instance: Role, created: bool, **kwargs: Any) -> None:
    if not created:
        role_changed(role=instance)
