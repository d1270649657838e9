"""The runbook pages: permission contract, marking with and without htmx, sign-off, exports, dashboard card."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.access.models import DeniedDecision
from apps.audit.models import AuditEvent
from apps.runbook import services
from apps.runbook.models import Runbook, RunbookItem
from apps.tenants.models import Membership
from tests.contract import PageContract, PermissionContract, Ref, form_page


class World:
    def __init__(self, cast, open_at) -> None:
        self.cast = cast
        self.runbook = open_at(cast.acme)
        self.item = RunbookItem.objects.for_tenant(cast.acme).get(runbook=self.runbook, kind="drill")
        self.globex_runbook = open_at(cast.globex)
        self.globex_item = RunbookItem.objects.for_tenant(cast.globex).get(runbook=self.globex_runbook, kind="drill")


@pytest.fixture
def world(cast, open_at) -> World:
    return World(cast, open_at)


FOREIGN_RUNBOOK = ({"runbook_id": Ref("globex_runbook")},)
RUNBOOK = {"runbook_id": Ref("runbook")}


class TestRunbookPagesContract(PermissionContract):
    app_namespace = "runbook"
    contracts = (
        PageContract("runbook:list", "audit.read"),
        PageContract("runbook:retention", "audit.read"),
        *form_page(
            "runbook:retention_edit",
            "role.manage",
            data={"audit_days": 400, "denied_days": 200, "usage_days": 100, "prompt_days": 30},
        ),
        PageContract("runbook:detail", "audit.read", kwargs=RUNBOOK, foreign=FOREIGN_RUNBOOK),
        PageContract("runbook:print", "audit.read", kwargs=RUNBOOK, foreign=FOREIGN_RUNBOOK),
        PageContract("runbook:export_json", "audit.read", kwargs=RUNBOOK, foreign=FOREIGN_RUNBOOK),
        PageContract(
            "runbook:item_mark",
            "role.manage",
            kwargs={**RUNBOOK, "item_id": Ref("item")},
            method="post",
            data={"mark": "fix", "note": "run the drill"},
            ok_status=302,
            foreign=(
                {"runbook_id": Ref("globex_runbook"), "item_id": Ref("globex_item")},
                {"item_id": Ref("globex_item")},  # our runbook, their line
                {"runbook_id": Ref("globex_runbook")},  # their runbook, our line
            ),
        ),
        PageContract(
            "runbook:refresh", "role.manage", kwargs=RUNBOOK, method="post", ok_status=302, foreign=FOREIGN_RUNBOOK
        ),
        PageContract(
            "runbook:sign_off", "role.manage", kwargs=RUNBOOK, method="post", ok_status=302, foreign=FOREIGN_RUNBOOK
        ),
    )

    @pytest.fixture
    def contract_world(self, world):
        return world

    def state(self, world):
        return (
            super().state(world),
            tuple(RunbookItem.objects.order_by("pk").values_list("pk", "mark", "note")),
            tuple(Runbook.objects.order_by("pk").values_list("pk", "status", "reviewed_until")),
        )


PATHS = {"detail": "", "print": "print/", "json": "export.json", "sign": "sign-off/"}


def url(world: World, name: str = "detail") -> str:
    return f"/t/acme/runbooks/{world.runbook.pk}/{PATHS[name]}"


def mark_url(world: World) -> str:
    return f"/t/acme/runbooks/{world.runbook.pk}/items/{world.item.pk}/mark/"


def test_marking_without_javascript_redirects_back_to_the_line(world, client_for):
    client = client_for(world.cast.admin)
    response = client.post(
        f"/t/acme/runbooks/{world.runbook.pk}/items/{world.item.pk}/mark/", {"mark": "fix", "note": "next week"}
    )
    assert response.status_code == 302
    assert response["Location"].endswith(f"#item-{world.item.pk}")
    world.item.refresh_from_db()
    assert (world.item.mark, world.item.note) == ("fix", "next week")
    page = client.get(response["Location"].split("#")[0])
    assert "Marked “Fix”" in page.content.decode()


def test_marking_with_htmx_answers_the_line_alone_with_errors_in_it(world, client_for):
    client = client_for(world.cast.admin)
    target = f"/t/acme/runbooks/{world.runbook.pk}/items/{world.item.pk}/mark/"
    response = client.post(target, {"mark": "fix", "note": ""}, HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert response.status_code == 200
    assert body.lstrip().startswith(f'<tr id="item-{world.item.pk}"')
    assert "Say what will be fixed" in body
    world.item.refresh_from_db()
    assert world.item.mark == ""
    response = client.post(target, {"mark": "expected"}, HTTP_HX_REQUEST="true")
    assert "No restore drill has passed this quarter" in response.content.decode()
    response = client.post(target, {"mark": "fix", "note": "book the drill"}, HTTP_HX_REQUEST="true")
    assert 'badge-err">Fix' in response.content.decode()
    assert "<html" not in response.content.decode()


def test_the_detail_page_offers_marking_to_managers_and_signing_to_owners(world, client_for):
    as_owner = client_for(world.cast.owner).get(url(world)).content.decode()
    as_admin = client_for(world.cast.admin).get(url(world)).content.decode()
    as_viewer_member = client_for(world.cast.member).get(url(world))
    assert "Sign off 2026-Q4" in as_owner
    assert 'name="mark"' in as_owner
    assert 'name="mark"' in as_admin
    assert "Sign off 2026-Q4" not in as_admin
    assert "Only an Owner can sign the runbook off" in as_admin
    assert as_viewer_member.status_code == 403  # a member holds no audit.read


def test_sign_off_through_the_page(world, client_for):
    owner = client_for(world.cast.owner)
    response = owner.post(url(world, "sign"), {"note": "done"}, follow=True)
    assert "not marked yet" in response.content.decode()
    for item in RunbookItem.objects.for_tenant(world.cast.acme).filter(runbook=world.runbook):
        owner.post(f"/t/acme/runbooks/{world.runbook.pk}/items/{item.pk}/mark/", {"mark": "fix", "note": "later"})
    admin_answer = client_for(world.cast.admin).post(url(world, "sign"), {"note": "x"}, follow=True)
    assert "Only an Owner" in admin_answer.content.decode()
    response = owner.post(url(world, "sign"), {"note": "done"}, follow=True)
    assert "signed off" in response.content.decode()
    world.runbook.refresh_from_db()
    assert world.runbook.status == "signed"
    page = owner.get(url(world)).content.decode()
    assert 'name="mark"' not in page  # frozen


def test_exports_are_audited(world, client_for):
    client = client_for(world.cast.owner)
    response = client.get(url(world, "json"))
    assert response["Content-Type"] == "application/json"
    assert "attachment" in response["Content-Disposition"]
    document = json.loads(response.content)
    assert document["quarter"] == "2026-Q4"
    printed = client.get(url(world, "print"))
    assert printed.status_code == 200
    assert b"runbook.css" in printed.content
    formats = sorted(
        AuditEvent.objects.for_tenant(world.cast.acme)
        .filter(action="runbook.export")
        .values_list("metadata__format", flat=True)
    )
    assert formats == ["html", "json"]


def test_an_auditor_reads_but_cannot_mark(world, client_for):
    auditor = Membership.objects.for_tenant(world.cast.acme).get(user=world.cast.viewer)
    auditor.role = Membership.Role.AUDITOR
    auditor.save(update_fields=["role"])
    client = client_for(world.cast.viewer)
    page = client.get(url(world)).content.decode()
    assert "Quarterly runbook 2026-Q4" in page
    assert 'name="mark"' not in page
    response = client.post(
        f"/t/acme/runbooks/{world.runbook.pk}/items/{world.item.pk}/mark/", {"mark": "fix", "note": "x"}
    )
    assert response.status_code == 403


def test_dashboard_card_shows_the_open_runbook(world, client_for):
    page = client_for(world.cast.owner).get("/t/acme/").content.decode()
    assert "Quarterly runbook" in page
    assert "2026-Q4" in page
    total = RunbookItem.objects.for_tenant(world.cast.acme).filter(runbook=world.runbook).count()
    assert f"0 of {total} line{'s' if total != 1 else ''} reviewed" in " ".join(page.split())


def test_the_detail_page_query_count_does_not_grow_with_lines(world, client_for):
    client = client_for(world.cast.owner)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert client.get(url(world)).status_code == 200
        return len(queries)

    count()  # warm: the first request of a session loads what later ones find cached
    few = count()
    DeniedDecision.objects.bulk_create(
        DeniedDecision(tenant=world.cast.acme, subject_type="member", subject_id=str(n), action="dataset.read")
        for n in range(40)
    )
    owner = Membership.objects.for_tenant(world.cast.acme).get(user=world.cast.owner)
    services.runbook_refresh(runbook=world.runbook, actor=owner)
    assert RunbookItem.objects.for_tenant(world.cast.acme).filter(runbook=world.runbook).count() >= 40
    assert count() == few
