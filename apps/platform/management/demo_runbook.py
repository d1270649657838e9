"""Demo runbook for Acme (#13 item 3): this quarter's runbook, open, with two lines already reviewed.

Opened through the service the beat task calls (audited as ``runbook.open``),
after the demo credentials exist so the rotate checklist lists them; the admin
then marks two drift-review lines (audited as ``runbook.item_mark``). The drill
line stays open: platform staff run a restore drill from /platform/runbook/drills/.
Idempotent: when Acme already has this quarter's runbook, nothing is done.
"""

from __future__ import annotations

from apps.runbook import selectors, services
from apps.tenants import selectors as tenant_selectors


def seed_runbook() -> list[str]:
    acme = tenant_selectors.tenant_get(slug="acme")
    if acme is None:
        return []
    runbook = services.runbook_open(tenant=acme)
    if runbook is None:
        return []
    admin = tenant_selectors.member_list(tenant=acme).filter(user__email="admin@acme.example").first()
    drift = [item for item in selectors.runbook_items(runbook=runbook) if item.checklist == "drift"][:2]
    notes = [("expected", "Reviewed with the data owner: intended."), ("fix", "Remove the binding by Friday (admin).")]
    for item, (mark, note) in zip(drift, notes, strict=False):
        services.item_mark(runbook=runbook, item_id=item.pk, mark=mark, note=note, actor=admin)
    return [f"acme: quarterly runbook {runbook.quarter} opened, {len(drift)} line(s) reviewed"]
