"""Runbook writes: open a quarter's runbooks, refresh, mark lines, sign off, export.

Every write is audited on the tenant's chain (``runbook.*``). Marking and
refreshing need the caller to have passed ``role.manage`` (the views check it);
signing off is for an Owner (base role), enforced here, and needs every line
marked. A signed runbook is frozen.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import Actor, record
from apps.runbook import checklists, drill
from apps.runbook.checklists import Line
from apps.runbook.models import DrillResult, Runbook, RunbookItem
from apps.runbook.quarters import Quarter, quarter_of
from apps.tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)

MAX_NOTE = 1000


class RunbookError(ValueError):
    """A runbook write was refused; the message says why, in words for the user."""


def _actor(membership: Membership | None) -> Actor:
    return Actor.for_user(membership.user) if membership is not None else Actor.system("runbook")


# --- opening ----------------------------------------------------------------------------------

# ON CONFLICT DO NOTHING: two runs at once (a beat overlap, a retried task) both try; the second
# waits on the first's uncommitted row in the unique index, then inserts nothing and moves on.
_INSERT_SQL = """
INSERT INTO runbook_runbook
    (tenant_id, quarter, period_start, period_end, review_since, reviewed_until, status, created_at,
     signed_by_display, sign_off_note)
VALUES (%s, %s, %s, %s, %s, %s, 'open', now(), '', '')
ON CONFLICT (tenant_id, quarter) DO NOTHING
RETURNING id
"""


def _review_since(tenant: Tenant, quarter: Quarter) -> datetime:
    """Since the last sign-off; a tenant's first review starts at the previous quarter's start."""
    last = (
        Runbook.objects.for_tenant(tenant)
        .filter(status=Runbook.Status.SIGNED, period_start__lt=quarter.start)
        .order_by("-signed_at")
        .values_list("signed_at", flat=True)
        .first()
    )
    return last or quarter.previous().start_at


def _lines(runbook: Runbook, tenant: Tenant, quarter: Quarter) -> list[Line]:
    return [
        *checklists.rotate_lines(tenant=tenant, quarter=quarter),
        *checklists.drill_lines(tenant=tenant, quarter=quarter),
        *checklists.drift_lines(tenant=tenant, since=runbook.review_since, until=runbook.reviewed_until),
    ]


def _sync(runbook: Runbook, lines: list[Line]) -> tuple[int, int]:
    """Store ``lines``: new refs are added, known ones updated in place (their marks stay). Returns (added, updated)."""
    existing = {item.ref: item for item in RunbookItem.objects.for_tenant(runbook.tenant_id).filter(runbook=runbook)}
    latest_drill = latest_finished_drill()
    added: list[RunbookItem] = []
    changed: list[RunbookItem] = []
    positions: Counter[str] = Counter()
    for line in lines:
        position = positions[line.checklist]
        positions[line.checklist] += 1
        item = existing.get(line.ref)
        if item is None:
            added.append(
                RunbookItem(
                    tenant_id=runbook.tenant_id,
                    runbook=runbook,
                    checklist=line.checklist,
                    kind=line.kind,
                    ref=line.ref,
                    position=position,
                    title=line.title[:300],
                    detail=line.detail,
                    link=line.link[:500],
                    credential_id=line.credential_id,
                    drill=latest_drill if line.kind == RunbookItem.Kind.DRILL else None,
                )
            )
        else:
            item.title, item.detail, item.link, item.position = line.title[:300], line.detail, line.link[:500], position
            if item.kind == RunbookItem.Kind.DRILL and not item.mark:
                item.drill = latest_drill
            changed.append(item)
    RunbookItem.objects.bulk_create(added)
    RunbookItem.objects.bulk_update(changed, ["title", "detail", "link", "position", "drill"])
    return len(added), len(changed)


def _counts(runbook: Runbook) -> dict[str, int]:
    return dict(
        Counter(
            RunbookItem.objects.for_tenant(runbook.tenant_id)
            .filter(runbook=runbook)
            .values_list("checklist", flat=True)
        )
    )


def runbook_open(*, tenant: Tenant, now: datetime | None = None) -> Runbook | None:
    """Open ``tenant``'s runbook for the quarter of ``now``; None when it already exists (idempotent)."""
    now = now or timezone.now()
    quarter = quarter_of(now)
    with transaction.atomic():
        since = _review_since(tenant, quarter)
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_SQL, [tenant.pk, quarter.label, quarter.start, quarter.end, since, max(now, since)])
            row = cursor.fetchone()
        if row is None:
            return None
        runbook = Runbook.objects.for_tenant(tenant).get(pk=row[0])
        _sync(runbook, _lines(runbook, tenant, quarter))
        record(
            "runbook.open",
            tenant=tenant,
            actor=Actor.system("quarterly runbook"),
            target=runbook,
            metadata={"quarter": quarter.label, "review_since": since.isoformat(), "lines": _counts(runbook)},
        )
    return runbook


def runbooks_open_quarter(*, now: datetime | None = None) -> int:
    """Open this quarter's runbook for every active tenant that has none; returns how many were opened.

    Each tenant in its own transaction: one tenant's failure does not stop the others.
    """
    opened = 0
    label = quarter_of(now or timezone.now()).label
    # One query finds who still needs one: an hourly run with nothing to do costs just that.
    have = Runbook.objects.filter(quarter=label).values("tenant_id")
    for tenant in Tenant.objects.active().exclude(pk__in=have).order_by("pk"):
        try:
            if runbook_open(tenant=tenant, now=now) is not None:
                opened += 1
        except Exception:  # the next tenant still gets its runbook; the error is logged
            logger.exception("could not open the quarterly runbook", extra={"tenant": tenant.slug})
    return opened


# --- changes to an open runbook ---------------------------------------------------------------


def _locked_open(runbook: Runbook) -> Runbook:
    locked = Runbook.objects.for_tenant(runbook.tenant_id).select_for_update().get(pk=runbook.pk)
    if not locked.is_open:
        raise RunbookError("This runbook is signed off; it can no longer change.")
    return locked


def runbook_refresh(*, runbook: Runbook, actor: Membership | None = None) -> tuple[int, int]:
    """Rebuild the lines up to now (new denials, changes, credentials); marks stay. Returns (added, updated)."""
    with transaction.atomic():
        locked = _locked_open(runbook)
        locked.reviewed_until = max(timezone.now(), locked.review_since)
        locked.save(update_fields=["reviewed_until"])
        tenant = Tenant.objects.get(pk=locked.tenant_id)
        quarter = quarter_of(locked.period_start)
        added, updated = _sync(locked, _lines(locked, tenant, quarter))
        record(
            "runbook.refresh",
            tenant=locked.tenant_id,
            actor=_actor(actor),
            target=locked,
            metadata={"quarter": locked.quarter, "added": added, "updated": updated},
        )
    return added, updated


def drill_start(*, by: Any, via: str = "console") -> DrillResult:
    """Queue a restore drill and have the worker run it once this transaction commits.

    Raises ``drill.DrillError`` when another drill is queued or running.
    """
    with transaction.atomic():
        queued = drill.drill_request(by=by, via=via)
        drill_id = queued.pk
        transaction.on_commit(lambda: _enqueue_drill(drill_id))
    return queued


def _enqueue_drill(drill_id: int) -> None:
    """Send the drill to the worker; a broker that cannot take it fails the drill visibly (never a 500)."""
    from apps.runbook.tasks import run_restore_drill

    try:
        run_restore_drill.delay(drill_id)
    except Exception:  # kombu and redis raise many kinds; the drill row says what happened
        logger.exception("could not queue restore drill %s", drill_id)
        DrillResult.objects.filter(pk=drill_id, status=DrillResult.Status.QUEUED).update(
            status=DrillResult.Status.FAILED,
            finished_at=timezone.now(),
            error="the task queue could not take the drill (is the broker running?); run it again",
        )


def latest_finished_drill() -> DrillResult | None:
    return (
        DrillResult.objects.filter(status__in=[DrillResult.Status.PASSED, DrillResult.Status.FAILED])
        .order_by("-finished_at", "-id")
        .first()
    )


def _passing_drill(runbook: Runbook) -> DrillResult | None:
    """The latest drill that passed since the runbook's quarter began."""
    quarter = quarter_of(runbook.period_start)
    return (
        DrillResult.objects.filter(status=DrillResult.Status.PASSED, finished_at__gte=quarter.start_at)
        .order_by("-finished_at", "-id")
        .first()
    )


def item_mark(
    *, runbook: Runbook, item_id: int, mark: str, note: str = "", actor: Membership | None = None
) -> RunbookItem:
    """Mark one line "expected" or "fix" (a fix needs a note saying what will be done).

    The drill line can be "expected" only when a drill passed this quarter; it
    then points at that drill. Raises RunbookError for a signed runbook, an
    unknown mark, a missing note; LookupError for a line not in this runbook.
    """
    note = (note or "").strip()
    if mark not in RunbookItem.Mark.values:
        raise RunbookError("Choose “expected” or “fix”.")
    if len(note) > MAX_NOTE:
        raise RunbookError(f"Keep the note under {MAX_NOTE} characters.")
    if mark == RunbookItem.Mark.FIX and not note:
        raise RunbookError("Say in the note what will be fixed, and by whom.")
    with transaction.atomic():
        locked = _locked_open(runbook)
        item = (
            RunbookItem.objects.for_tenant(locked.tenant_id)
            .select_for_update()
            .filter(runbook=locked, pk=item_id)
            .first()
        )
        if item is None:
            raise LookupError("no such line in this runbook")
        previous = item.mark
        if item.kind == RunbookItem.Kind.DRILL:
            if mark == RunbookItem.Mark.EXPECTED:
                drill = _passing_drill(locked)
                if drill is None:
                    raise RunbookError(
                        "No restore drill has passed this quarter yet: mark it “fix” with a note, "
                        "or ask platform staff to run one."
                    )
                item.drill = drill
            else:
                item.drill = latest_finished_drill()
        item.mark, item.note = mark, note
        item.marked_at = timezone.now()
        item.marked_by = actor
        item.marked_by_display = actor.user.email if actor is not None else ""
        item.save(update_fields=["mark", "note", "marked_at", "marked_by", "marked_by_display", "drill"])
        record(
            "runbook.item_mark",
            tenant=locked.tenant_id,
            actor=_actor(actor),
            target=item,
            metadata={
                "runbook": locked.pk,
                "quarter": locked.quarter,
                "ref": item.ref,
                "mark": mark,
                "previous": previous,
                "note": note,
                "drill": item.drill_id,
            },
        )
    return item


def runbook_sign_off(*, runbook: Runbook, actor: Membership, note: str = "") -> Runbook:
    """An Owner signs the runbook off; every line must be marked. Raises RunbookError otherwise."""
    note = (note or "").strip()
    if actor.role != Membership.Role.OWNER or actor.status != Membership.Status.ACTIVE:
        raise RunbookError("Only an Owner of the organisation can sign the runbook off.")
    if len(note) > MAX_NOTE:
        raise RunbookError(f"Keep the note under {MAX_NOTE} characters.")
    with transaction.atomic():
        locked = _locked_open(runbook)
        items = RunbookItem.objects.for_tenant(locked.tenant_id).filter(runbook=locked)
        unmarked = items.filter(mark="").count()
        if unmarked:
            raise RunbookError(
                f"{unmarked} line{'s are' if unmarked != 1 else ' is'} not marked yet: "
                "mark every line “expected” or “fix” first."
            )
        summary = Counter(f"{checklist}.{mark}" for checklist, mark in items.values_list("checklist", "mark"))
        locked.status = Runbook.Status.SIGNED
        locked.signed_at = timezone.now()
        locked.signed_by = actor
        locked.signed_by_display = actor.user.email
        locked.sign_off_note = note
        locked.save(update_fields=["status", "signed_at", "signed_by", "signed_by_display", "sign_off_note"])
        record(
            "runbook.sign_off",
            tenant=locked.tenant_id,
            actor=_actor(actor),
            target=locked,
            metadata={"quarter": locked.quarter, "lines": dict(summary), "note": note},
        )
    return locked


def runbook_export_recorded(*, runbook: Runbook, fmt: str, actor: Membership | None) -> None:
    """Record that a runbook was exported (print view or JSON): evidence leaves the console."""
    record(
        "runbook.export",
        tenant=runbook.tenant_id,
        actor=_actor(actor),
        target=runbook,
        metadata={"quarter": runbook.quarter, "format": fmt},
    )


def runbook_document(*, runbook: Runbook, items: list[RunbookItem]) -> dict[str, Any]:
    """The runbook as a JSON-safe document (the JSON export; the print view shows the same)."""

    def drill(result: DrillResult | None) -> dict[str, Any] | None:
        if result is None:
            return None
        return {
            "id": result.pk,
            "status": result.status,
            "finished_at": result.finished_at.isoformat() if result.finished_at else None,
            "duration_ms": result.duration_ms,
            "tables": result.tables,
            "rows": result.rows,
            "mismatches": result.mismatches,
            "chains_verified": result.chains_verified,
            "events_verified": result.events_verified,
            "chain_problems": result.chain_problems,
            "error": result.error,
        }

    return {
        "tenant": runbook.tenant.slug,
        "quarter": runbook.quarter,
        "period": {"start": runbook.period_start.isoformat(), "end": runbook.period_end.isoformat()},
        "review_window": {"since": runbook.review_since.isoformat(), "until": runbook.reviewed_until.isoformat()},
        "status": runbook.status,
        "signed_off": {
            "at": runbook.signed_at.isoformat() if runbook.signed_at else None,
            "by": runbook.signed_by_display,
            "note": runbook.sign_off_note,
        },
        "items": [
            {
                "id": item.pk,
                "checklist": item.checklist,
                "kind": item.kind,
                "ref": item.ref,
                "title": item.title,
                "detail": item.detail,
                "link": item.link,
                "mark": item.mark or None,
                "note": item.note,
                "marked_at": item.marked_at.isoformat() if item.marked_at else None,
                "marked_by": item.marked_by_display,
                "drill": drill(item.drill) if item.kind == RunbookItem.Kind.DRILL else None,
            }
            for item in items
        ],
    }
