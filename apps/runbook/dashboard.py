"""The tenant dashboard card: the open runbook and how far its review is (audit.read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils import timezone

from apps.runbook.selectors import open_runbook_progress
from apps.tenants.dashboard import Card

if TYPE_CHECKING:
    from apps.access.decorators import TenantRequest

# The card asks for attention when the quarter has this little left and lines are still open.
ATTENTION_DAYS_LEFT = 21


def runbook_card(request: TenantRequest) -> Card | None:
    if not request.can("audit.read", for_reading=True):
        return None
    progress = open_runbook_progress(tenant=request.tenant)
    if progress is None:
        return None
    days_left = (progress.runbook.period_end - timezone.now().date()).days
    return Card(
        template="runbook/partials/_dashboard_card.html",
        context={"progress": progress, "days_left": days_left},
        attention=progress.marked < progress.total and days_left <= ATTENTION_DAYS_LEFT,
    )
