"""The alerts card on the tenant dashboard: open alerts (and open fraud cases for reviewers)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.alerts import selectors
from apps.tenants.dashboard import Card

if TYPE_CHECKING:
    from apps.access.decorators import TenantRequest


def open_alerts_card(request: TenantRequest) -> Card | None:
    """For audit.read holders: open and acknowledged alerts, the newest three; fraud cases if they review them.

    Two queries at most (one aggregate, one LIMIT 3), three with the fraud count.
    """
    if not request.can("audit.read", for_reading=True):
        return None
    reviews = request.can("apiclient.manage", for_reading=True)
    counts = selectors.open_counts(tenant=request.tenant, with_cases=reviews)
    recent = selectors.recent_open_alerts(tenant=request.tenant) if counts.open or counts.acknowledged else []
    context = {"counts": counts, "recent": recent, "reviews": reviews}
    return Card(
        template="alerts/partials/_dashboard_card.html",
        context=context,
        attention=bool(counts.open or counts.cases),
    )
