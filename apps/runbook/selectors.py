"""Runbook reads (tenant-scoped; the caller checked ``audit.read``) and restore-drill evidence (platform-wide)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Count, Q, QuerySet

from apps.runbook.models import DrillResult, Runbook, RunbookItem
from apps.tenants.models import Tenant

try:  # live rotation status of the credentials a rotate line names (apps.keys, #13 item 1)
    from apps.keys.credentials.selectors import credential_list
except ImportError:  # pragma: no cover - an installation without the inventory
    credential_list = None

_MAX_ID = 2**63


def _valid(pk: int) -> bool:
    return 0 < pk < _MAX_ID


def runbook_list(*, tenant: Tenant) -> QuerySet[Runbook]:
    """The tenant's runbooks, newest quarter first, each with ``total`` and ``marked`` line counts (one query)."""
    return (
        Runbook.objects.for_tenant(tenant)
        .annotate(total=Count("items"), marked=Count("items", filter=~Q(items__mark="")))
        .order_by("-period_start", "-id")
    )


def runbook_get(*, tenant: Tenant, runbook_id: int) -> Runbook | None:
    """One runbook of ``tenant``; None for an unknown id or another tenant's (404 alike)."""
    if not _valid(runbook_id):
        return None
    return Runbook.objects.for_tenant(tenant).select_related("tenant").filter(pk=runbook_id).first()


def item_get(*, runbook: Runbook, item_id: int) -> RunbookItem | None:
    if not _valid(item_id):
        return None
    return (
        RunbookItem.objects.for_tenant(runbook.tenant_id)
        .filter(runbook=runbook, pk=item_id)
        .select_related("drill")
        .first()
    )


def runbook_items(*, runbook: Runbook) -> list[RunbookItem]:
    """Every line of the runbook, checklist by checklist, with the drill evidence joined."""
    order = {value: index for index, value in enumerate(RunbookItem.Checklist.values)}
    items = list(
        RunbookItem.objects.for_tenant(runbook.tenant_id)
        .filter(runbook=runbook)
        .select_related("drill")
        .order_by("position", "id")
    )
    return sorted(items, key=lambda item: (order.get(item.checklist, 99), item.position, item.pk))


@dataclass
class ChecklistView:
    """One checklist of a runbook page: its lines and how many are marked."""

    key: str
    label: str
    items: list[RunbookItem] = field(default_factory=list)

    @property
    def marked(self) -> int:
        return sum(1 for item in self.items if item.mark)


def checklists_of(items: list[RunbookItem]) -> list[ChecklistView]:
    views = {key: ChecklistView(key, label) for key, label in RunbookItem.Checklist.choices}
    for item in items:
        views[item.checklist].items.append(item)
    return list(views.values())


@dataclass(frozen=True, slots=True)
class RotationStatus:
    last_rotated_at: datetime | None
    next_due_on: Any


def rotation_status(*, tenant: Tenant, items: list[RunbookItem]) -> dict[int, RotationStatus]:
    """For each rotate line's credential, when it was last rotated and when it is due now (one query)."""
    ids = [item.credential_id for item in items if item.credential_id]
    if not ids or credential_list is None:
        return {}
    return {
        pk: RotationStatus(rotated, due)
        for pk, rotated, due in credential_list(tenant=tenant)
        .filter(pk__in=ids)
        .values_list("pk", "last_rotated_at", "next_due_on")
    }


@dataclass(frozen=True, slots=True)
class Progress:
    runbook: Runbook
    total: int
    marked: int

    @property
    def percent(self) -> int:
        return round(100 * self.marked / self.total) if self.total else 100


def runbook_progress(*, runbook: Runbook) -> Progress:
    """How many of the runbook's lines are marked (one query)."""
    counts = (
        RunbookItem.objects.for_tenant(runbook.tenant_id)
        .filter(runbook=runbook)
        .aggregate(total=Count("pk"), marked=Count("pk", filter=~Q(mark="")))
    )
    return Progress(runbook=runbook, total=counts["total"], marked=counts["marked"])


def open_runbook_progress(*, tenant: Tenant) -> Progress | None:
    """The tenant's latest open runbook with its progress (the dashboard card; one query)."""
    runbook = runbook_list(tenant=tenant).filter(status=Runbook.Status.OPEN).first()
    if runbook is None:
        return None
    return Progress(runbook=runbook, total=runbook.total, marked=runbook.marked)


def latest_drill() -> DrillResult | None:
    """The most recent finished restore drill (what tenants see)."""
    return (
        DrillResult.objects.filter(status__in=[DrillResult.Status.PASSED, DrillResult.Status.FAILED])
        .order_by("-finished_at", "-id")
        .first()
    )


def drill_list() -> QuerySet[DrillResult]:
    """Every drill, newest request first, with who asked (platform staff's page)."""
    return DrillResult.objects.select_related("requested_by").order_by("-requested_at", "-id")


def drill_get(*, drill_id: int) -> DrillResult | None:
    if not _valid(drill_id):
        return None
    return DrillResult.objects.select_related("requested_by").filter(pk=drill_id).first()
