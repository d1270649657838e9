"""The runbook itself: what its checklists hold, marking, sign-off, refresh and exports."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import time_machine

from apps.access import services as access_services
from apps.access.models import DeniedDecision
from apps.audit.models import AuditEvent
from apps.keys.models import Credential
from apps.runbook import services
from apps.runbook.models import DrillResult, Runbook, RunbookItem
from apps.runbook.services import RunbookError
from apps.tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory
from tests.runbook.conftest import NOW

IN_WINDOW = datetime(2026, 8, 15, 12, 0, tzinfo=UTC)  # inside 2026-Q3, the first review's window
BEFORE_WINDOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


def membership(cast, user) -> Membership:
    return Membership.objects.for_tenant(cast.acme).get(user=user)


def deny(tenant, member: Membership, action: str, at: datetime) -> None:
    DeniedDecision.objects.create(
        tenant=tenant,
        occurred_at=at,
        subject_type="member",
        subject_id=str(member.pk),
        subject_display=member.user.email,
        action=action,
    )


def credential(tenant, name: str, due: date) -> Credential:
    return Credential.objects.create(
        tenant=tenant, name=name, provider="openai", reference=f"env://{name.upper()}", next_due_on=due
    )


@pytest.fixture
def history(cast):
    """Acme's quarter: denials, access changes, dormant members and credentials; Globex's own noise."""
    member, viewer = membership(cast, cast.member), membership(cast, cast.viewer)
    for _ in range(3):
        deny(cast.acme, member, "dataset.read", IN_WINDOW)
    deny(cast.acme, member, "tool.execute", IN_WINDOW)
    deny(cast.acme, viewer, "dataset.read", IN_WINDOW)
    deny(cast.acme, viewer, "role.manage", BEFORE_WINDOW)  # reviewed last time: not again
    globex_owner = Membership.objects.for_tenant(cast.globex).get()
    deny(cast.globex, globex_owner, "dataset.read", IN_WINDOW)
    owner = membership(cast, cast.owner)
    with time_machine.travel(BEFORE_WINDOW, tick=False):
        access_services.role_create(tenant=cast.acme, key="old", name="Old role", permissions=["tenant.view"])
    with time_machine.travel(IN_WINDOW, tick=False):
        steward = access_services.role_create(
            tenant=cast.acme, key="steward", name="Data steward", permissions=["tenant.view"], actor=owner
        )
        access_services.binding_create(role=steward, membership=viewer, actor=owner)
        access_services.role_create(tenant=cast.globex, key="gx", name="Globex role", permissions=["tenant.view"])
    # Sign-ins: the member recently, the viewer long ago, a new joiner never (but joined long ago).
    cast.member.last_login = NOW - timedelta(days=10)
    cast.member.save(update_fields=["last_login"])
    cast.viewer.last_login = NOW - timedelta(days=120)
    cast.viewer.save(update_fields=["last_login"])
    for person in (cast.owner, cast.admin):
        person.last_login = NOW - timedelta(days=1)
        person.save(update_fields=["last_login"])
    quiet = MembershipFactory(
        tenant=cast.acme, user=UserFactory(email="quiet@acme.example"), joined_at=NOW - timedelta(days=200)
    )
    MembershipFactory(
        tenant=cast.acme,
        user=UserFactory(email="invited@acme.example"),
        status=Membership.Status.INVITED,
        joined_at=None,
    )
    credential(cast.acme, "openai-prod", date(2026, 12, 1))  # due this quarter
    credential(cast.acme, "anthropic-prod", date(2026, 9, 1))  # overdue from last quarter
    credential(cast.acme, "search-dev", date(2027, 2, 1))  # next quarter: not this runbook's
    credential(cast.globex, "globex-key", date(2026, 11, 20))
    return {"quiet": quiet, "steward": steward}


def lines(runbook: Runbook, checklist: str | None = None) -> list[RunbookItem]:
    items = RunbookItem.objects.for_tenant(runbook.tenant_id).filter(runbook=runbook)
    if checklist:
        items = items.filter(checklist=checklist)
    return list(items.order_by("position"))


def test_the_checklists_hold_what_the_quarter_needs(cast, history, open_at):
    runbook = open_at(cast.acme)
    assert runbook.quarter == "2026-Q4"
    assert (runbook.period_start, runbook.period_end) == (date(2026, 10, 1), date(2027, 1, 1))
    assert runbook.review_since == datetime(2026, 7, 1, tzinfo=UTC)  # first review: from last quarter's start

    rotate = lines(runbook, "rotate")
    assert [item.title.split(" (")[0] for item in rotate] == ["Rotate anthropic-prod", "Rotate openai-prod"]
    assert rotate[0].detail["overdue_at_start"] is True
    assert rotate[0].link.startswith(f"/t/acme/keys/credentials/{rotate[0].credential_id}")

    [drill] = lines(runbook, "drill")
    assert drill.kind == "drill"

    drift = lines(runbook, "drift")
    denied = {item.ref: item for item in drift if item.kind == "denied"}
    member, viewer = membership(cast, cast.member), membership(cast, cast.viewer)
    assert set(denied) == {
        f"denied:{member.pk}:dataset.read",
        f"denied:{member.pk}:tool.execute",
        f"denied:{viewer.pk}:dataset.read",
    }
    assert denied[f"denied:{member.pk}:dataset.read"].detail["count"] == 3
    assert "3 times" in denied[f"denied:{member.pk}:dataset.read"].title
    assert denied[f"denied:{member.pk}:dataset.read"].link.startswith("/t/acme/access/denied/?")

    changes = [item for item in drift if item.kind == "access_change"]
    assert [item.detail["action"] for item in changes] == ["role.create", "role.bind"]
    assert "Data steward" in changes[0].title
    assert all("Old role" not in item.title and "Globex" not in item.title for item in changes)

    dormant = {item.title.split(" ")[0] for item in drift if item.kind == "dormant"}
    assert dormant == {"viewer@acme.example", "quiet@acme.example"}

    event = AuditEvent.objects.for_tenant(cast.acme).get(action="runbook.open")
    assert event.metadata["lines"] == {"rotate": 2, "drill": 1, "drift": len(drift)}
    # Globex's runbook sees only Globex.
    globex = open_at(cast.globex)
    assert all("acme" not in item.title for item in lines(globex))
    assert [item.title.split(" (")[0] for item in lines(globex, "rotate")] == ["Rotate globex-key"]


def test_opening_twice_is_a_no_op(cast, open_at):
    open_at(cast.acme)
    with time_machine.travel(NOW + timedelta(days=3), tick=False):
        assert services.runbook_open(tenant=cast.acme) is None
        assert services.runbooks_open_quarter() == 1  # globex only
        assert services.runbooks_open_quarter() == 0
    assert Runbook.objects.for_tenant(cast.acme).count() == 1


def mark_all(runbook: Runbook, actor: Membership) -> None:
    for item in lines(runbook):
        if item.kind == "drill":
            services.item_mark(runbook=runbook, item_id=item.pk, mark="fix", note="drill next week", actor=actor)
        else:
            services.item_mark(runbook=runbook, item_id=item.pk, mark="expected", actor=actor)


def test_sign_off_needs_every_line_marked_and_an_owner(cast, history, open_at):
    runbook = open_at(cast.acme)
    owner, admin = membership(cast, cast.owner), membership(cast, cast.admin)
    with pytest.raises(RunbookError, match="not marked yet"):
        services.runbook_sign_off(runbook=runbook, actor=owner)
    mark_all(runbook, admin)
    with pytest.raises(RunbookError, match="Only an Owner"):
        services.runbook_sign_off(runbook=runbook, actor=admin)
    signed = services.runbook_sign_off(runbook=runbook, actor=owner, note="All reviewed.")
    assert (signed.status, signed.signed_by, signed.sign_off_note) == ("signed", owner, "All reviewed.")
    event = AuditEvent.objects.for_tenant(cast.acme).get(action="runbook.sign_off")
    assert event.actor_id == str(cast.owner.pk)
    assert event.metadata["lines"]["drill.fix"] == 1
    assert event.metadata["lines"]["rotate.expected"] == 2
    # Frozen: no more marks, refreshes or sign-offs.
    item = lines(runbook)[0]
    with pytest.raises(RunbookError, match="signed off"):
        services.item_mark(runbook=runbook, item_id=item.pk, mark="fix", note="late", actor=owner)
    with pytest.raises(RunbookError, match="signed off"):
        services.runbook_refresh(runbook=runbook, actor=owner)
    with pytest.raises(RunbookError, match="signed off"):
        services.runbook_sign_off(runbook=runbook, actor=owner)
    # The next quarter's review starts at this sign-off.
    with time_machine.travel(datetime(2027, 1, 2, tzinfo=UTC), tick=False):
        nxt = services.runbook_open(tenant=cast.acme)
    assert nxt.quarter == "2027-Q1"
    assert nxt.review_since == signed.signed_at


def test_a_disabled_owner_cannot_sign(cast, open_at):
    runbook = open_at(cast.acme)
    owner = membership(cast, cast.owner)
    mark_all(runbook, owner)
    owner.status = Membership.Status.DISABLED
    with pytest.raises(RunbookError, match="Only an Owner"):
        services.runbook_sign_off(runbook=runbook, actor=owner)


def test_marks_are_validated_and_audited(cast, history, open_at):
    runbook = open_at(cast.acme)
    admin = membership(cast, cast.admin)
    item = next(item for item in lines(runbook) if item.kind == "denied")
    with pytest.raises(RunbookError, match="what will be fixed"):
        services.item_mark(runbook=runbook, item_id=item.pk, mark="fix", note="  ", actor=admin)
    with pytest.raises(RunbookError, match="expected"):
        services.item_mark(runbook=runbook, item_id=item.pk, mark="ignore", actor=admin)
    with pytest.raises(RunbookError, match="under 1000"):
        services.item_mark(runbook=runbook, item_id=item.pk, mark="fix", note="x" * 1001, actor=admin)
    note = "Remove sk_live_abcdefghijklmnop"
    services.item_mark(runbook=runbook, item_id=item.pk, mark="fix", note=note, actor=admin)
    item.refresh_from_db()
    assert (item.mark, item.marked_by, item.marked_by_display) == ("fix", admin, "admin@acme.example")
    event = AuditEvent.objects.for_tenant(cast.acme).get(action="runbook.item_mark")
    assert (event.metadata["ref"], event.metadata["mark"], event.metadata["previous"]) == (item.ref, "fix", "")
    assert "sk_live_abcdefghijklmnop" not in json.dumps(event.metadata)  # notes are masked like all metadata
    globex_item = lines(open_at(cast.globex))[0]
    with pytest.raises(LookupError):  # another runbook's line, by id
        services.item_mark(runbook=runbook, item_id=globex_item.pk, mark="expected", actor=admin)


def test_the_drill_line_is_expected_only_with_a_drill_that_passed_this_quarter(cast, open_at):
    runbook = open_at(cast.acme)
    admin = membership(cast, cast.admin)
    [line] = lines(runbook, "drill")
    DrillResult.objects.create(status="passed", finished_at=datetime(2026, 9, 20, tzinfo=UTC))  # last quarter
    DrillResult.objects.create(status="failed", finished_at=datetime(2026, 10, 20, tzinfo=UTC))
    with pytest.raises(RunbookError, match="No restore drill has passed this quarter"):
        services.item_mark(runbook=runbook, item_id=line.pk, mark="expected", actor=admin)
    passed = DrillResult.objects.create(status="passed", finished_at=datetime(2026, 11, 2, tzinfo=UTC))
    services.item_mark(runbook=runbook, item_id=line.pk, mark="expected", actor=admin)
    line.refresh_from_db()
    assert line.drill == passed


def test_refresh_adds_new_lines_and_keeps_marks(cast, history, open_at):
    runbook = open_at(cast.acme)
    admin = membership(cast, cast.admin)
    first = next(item for item in lines(runbook) if item.kind == "denied")
    services.item_mark(runbook=runbook, item_id=first.pk, mark="expected", note="known", actor=admin)
    deny(cast.acme, membership(cast, cast.admin), "billing.manage", NOW + timedelta(days=1))
    with time_machine.travel(NOW + timedelta(days=2), tick=False):
        added, _updated = services.runbook_refresh(runbook=runbook, actor=admin)
    assert added == 1
    first.refresh_from_db()
    assert (first.mark, first.note) == ("expected", "known")
    assert any(item.ref.endswith(":billing.manage") for item in lines(runbook, "drift"))
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="runbook.refresh").count() == 1


def test_the_json_document(cast, history, open_at):
    runbook = open_at(cast.acme)
    document = services.runbook_document(runbook=runbook, items=lines(runbook))
    assert document["quarter"] == "2026-Q4"
    assert document["tenant"] == "acme"
    assert {item["checklist"] for item in document["items"]} == {"rotate", "drill", "drift"}
    json.dumps(document)  # JSON-safe
