"""The keys app's card on the tenant dashboard (a face; see ``apps.tenants.dashboard``).

"Credentials to rotate", for members with ``key.manage``: overdue and due-soon
counts, the five soonest, and SSO certificates nearing expiry (webhook secrets
and other sources only on the "Due and overdue" page). Asks for
attention when anything is overdue or expired. Two small indexed queries (the
credentials, the tenant's SSO connections).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.keys.credentials import adapters
from apps.keys.credentials import selectors as credential_selectors
from apps.tenants.dashboard import Card

if TYPE_CHECKING:
    from apps.access.decorators import TenantRequest

SHOWN = 5


def credentials_card(request: TenantRequest) -> Card | None:
    if not request.can("key.manage"):
        return None
    due = list(credential_selectors.credentials_overdue_and_soon(tenant=request.tenant)[: SHOWN + 50])
    overdue = sum(1 for c in due if c.due_state == "overdue")
    # Certificates only (one query): webhook secrets and other sources are on the due page.
    certificates = sorted(adapters.certificate_items(request.tenant), key=lambda item: item.due_on)
    today = credential_selectors.today()
    expired = sum(1 for item in certificates if item.due_on < today)
    return Card(
        template="keys/partials/_dashboard_card.html",
        context={
            "overdue": overdue,
            "soon": len(due) - overdue,
            "shown": due[:SHOWN],
            "certificates": [(item, (item.due_on - today).days) for item in certificates[:SHOWN]],
        },
        attention=bool(overdue or expired),
    )
