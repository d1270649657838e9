"""The break-glass card on the tenant dashboard (a face; see ``apps.tenants.dashboard``).

Shown to approvers and to those who read the audit log: how many elevations are
active and pending, the soonest-ending active ones, and the requests waiting for
the viewer (asking for attention when there are any). Three small indexed queries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.breakglass import selectors
from apps.tenants.dashboard import Card

if TYPE_CHECKING:
    from apps.access.decorators import TenantRequest

SHOWN = 5
_WAITING_ATTR = "_breakglass_waiting_count"


def waiting_for(request: TenantRequest) -> int:
    """Requests waiting for this approver, counted once per request (the card and the nav badge both show it)."""
    cached = getattr(request, _WAITING_ATTR, None)
    if cached is None:
        cached = selectors.waiting_count(tenant=request.tenant, membership=request.membership)
        setattr(request, _WAITING_ATTR, cached)
    return cached


def elevations_card(request: TenantRequest) -> Card | None:
    may_approve = request.can("breakglass.approve")
    if not (may_approve or request.can("audit.read")):
        return None
    counts = selectors.elevation_counts(tenant=request.tenant)
    waiting = waiting_for(request) if may_approve else 0
    active = selectors.active_elevations(tenant=request.tenant, limit=SHOWN) if counts["active"] else []
    return Card(
        template="breakglass/partials/_dashboard_card.html",
        context={
            "active_count": counts["active"],
            "pending_count": counts["pending"],
            "waiting": waiting,
            "active": active,
            "may_approve": may_approve,
            "may_review": request.can("audit.read"),
        },
        attention=waiting > 0,
    )
