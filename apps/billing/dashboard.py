"""The billing card on the tenant dashboard: plan, status, period and dunning state (billing.view)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.billing import subscriptions
from apps.tenants.dashboard import Card

if TYPE_CHECKING:
    from apps.access.decorators import TenantRequest


def billing_card(request: TenantRequest) -> Card | None:
    if not request.can("billing.view", for_reading=True):
        return None
    billing = subscriptions.summary(tenant=request.tenant)
    return Card(
        template="billing/partials/_dashboard_card.html",
        context={"billing": billing},
        attention=billing.banner is not None,
    )
