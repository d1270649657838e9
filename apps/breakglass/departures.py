"""A member who leaves the tenant (removed, or disabled) leaves their elevations behind.

``access`` and ``tenants`` know nothing of break-glass, so ``apps.breakglass.signals``
calls this when a membership is deleted or saved as disabled. Active elevations end
now (binding ended, audited, e-mailed) and pending requests are cancelled, so
nothing survives the person: re-enabling or re-inviting them gives no elevated
role back. The rows stay (their requester becomes NULL on deletion, the e-mail
snapshot names them), so the review pages keep the history.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from apps.access.models import Role
from apps.audit.services import Actor, record
from apps.breakglass.models import Approval, Elevation
from apps.breakglass.services import approvals_needed, end_locked


@transaction.atomic
def member_leaving(*, tenant_id: int, membership_id: int, reason: str) -> int:
    """End the member's active elevations and cancel their pending requests; returns how many rows changed."""
    rows = list(
        Elevation.objects.for_tenant(tenant_id)
        .filter(requester_id=membership_id, status__in=[Elevation.Status.PENDING, Elevation.Status.ACTIVE])
        .select_for_update(of=("self",))
        .select_related("policy", "role")
        .order_by("id")
    )
    now = timezone.now()
    for elevation in rows:
        if elevation.status == Elevation.Status.ACTIVE:
            end_locked(elevation, actor=None, now=now, system="break-glass", reason=reason)
            continue
        elevation.status, elevation.ended_at = Elevation.Status.CANCELLED, now
        elevation.save(update_fields=["status", "ended_at"])
        record(
            "breakglass.cancel",
            tenant=tenant_id,
            actor=Actor.system("break-glass"),
            target=elevation,
            metadata={"elevation": elevation.pk, "reason": reason},
        )
    return len(rows)


@transaction.atomic
def role_changed(*, role: Role) -> int:
    """End active elevations to ``role`` that now need more approvals than they had; returns how many.

    A role edited during an elevation (say it gained ``member.manage``) would otherwise hand the
    new permission out on one approval: the two-person rule holds for the role as it is now.
    """
    needed = approvals_needed(role, 1)
    if needed < 2:
        return 0
    rows = list(
        Elevation.objects.for_tenant(role.tenant_id)
        .filter(role=role, status=Elevation.Status.ACTIVE, expires_at__gt=timezone.now())
        .select_for_update(of=("self",))
        .select_related("policy", "role")
    )
    ended = 0
    for elevation in rows:
        approved = Approval.objects.for_tenant(role.tenant_id).filter(
            elevation=elevation, decision=Approval.Decision.APPROVE
        )
        if approved.count() < max(needed, elevation.approvals_required):
            end_locked(elevation, actor=None, now=timezone.now(), reason="role changed: needs more approvals")
            ended += 1
    return ended
