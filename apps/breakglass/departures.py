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

from apps.audit.services import Actor, record
from apps.breakglass.models import Elevation
from apps.breakglass.services import end_locked


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
