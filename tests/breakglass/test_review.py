"""Review (#11, item 7): the elevations page, one elevation's timeline and the person's audit events
during the window (keyset paged, exported through the audit log's exporter), and the dashboard card."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record
from apps.breakglass import services
from apps.breakglass.models import Elevation
from tests.breakglass.conftest import ask

pytestmark = pytest.mark.django_db

AT = datetime(2026, 3, 2, 13, 0, tzinfo=UTC)
LIST = reverse("breakglass:elevation_list", kwargs={"tenant_slug": "acme"})


def _detail(pk: int) -> str:
    return reverse("breakglass:elevation_detail", kwargs={"tenant_slug": "acme", "pk": pk})


def _export(pk: int, fmt: str) -> str:
    return reverse("breakglass:elevation_export", kwargs={"tenant_slug": "acme", "pk": pk, "fmt": fmt})


@pytest.fixture
def history(world):
    """One elevation of 30 minutes at 13:00, with the member's events before, during and after it."""
    with time_machine.travel(AT - timedelta(minutes=1), tick=False):
        requested = ask(world, incident_ref="INC-9")
    with time_machine.travel(AT, tick=False):
        elevation = services.elevation_approve(
            tenant=world.cast.acme, elevation_id=requested.pk, approver=world.approver1
        )
    for minute, action in (
        (-5, "dataset.read_before"),
        (5, "dataset.write_during"),
        (29, "tool.run_during"),
        (31, "dataset.read_after"),
    ):
        with time_machine.travel(AT + timedelta(minutes=minute), tick=False):
            record(action, tenant=world.cast.acme, actor=Actor.for_user(world.cast.member), metadata={"m": minute})
    with time_machine.travel(AT + timedelta(minutes=10), tick=False):
        record("member.invite", tenant=world.cast.acme, actor=Actor.for_user(world.cast.owner))  # someone else
    world.elevation = elevation
    return world


def test_the_detail_shows_the_timeline_and_only_the_persons_events_in_the_window(history, client_for) -> None:
    with time_machine.travel(AT + timedelta(hours=2), tick=False):
        html = client_for(history.approver2.user).get(_detail(history.elevation.pk)).content.decode()
    for text in ("Requested", "approver1@acme.example", "Approved", "Active", "INC-9", "prod outage"):
        assert text in html, text
    assert "dataset.write_during" in html
    assert "tool.run_during" in html
    assert "breakglass.activate" not in html  # the system's event, not the person's
    for absent in ("dataset.read_before", "dataset.read_after", "member.invite"):
        assert absent not in html, absent


def test_the_events_are_keyset_paged(history, client_for, monkeypatch) -> None:
    from apps.breakglass.views import review

    monkeypatch.setattr(review, "EVENTS_PAGE_SIZE", 1)
    client = client_for(history.approver2.user)
    with time_machine.travel(AT + timedelta(hours=2), tick=False):
        first = client.get(_detail(history.elevation.pk)).content.decode()
        assert "tool.run_during" in first
        assert "dataset.write_during" not in first
        older = first.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        second = client.get(older).content.decode()
        assert "dataset.write_during" in second
        assert "tool.run_during" not in second
        assert client.get(_detail(history.elevation.pk) + "?cursor=garbage").status_code == 400


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_export_has_the_window_only_and_is_audited(history, client_for, fmt) -> None:
    with time_machine.travel(AT + timedelta(hours=2), tick=False):
        response = client_for(history.approver2.user).get(_export(history.elevation.pk, fmt))
    assert response.status_code == 200
    assert f"acme-elevation-{history.elevation.pk}" in response["Content-Disposition"]
    body = b"".join(response.streaming_content).decode()
    assert "dataset.write_during" in body
    assert "tool.run_during" in body
    assert "dataset.read_before" not in body
    assert "member.invite" not in body
    if fmt == "jsonl":
        assert sorted(json.loads(line)["action"] for line in body.splitlines()) == [
            "dataset.write_during",
            "tool.run_during",
        ]
    event = AuditEvent.objects.filter(action="audit.export").latest("id")
    assert event.metadata["format"] == fmt
    assert event.metadata["filters"]["elevation"] == history.elevation.pk


def test_another_tenants_elevation_is_404_in_every_review_url(history, client_for) -> None:
    client = client_for(history.globex_owner.user)
    for url in (_detail(history.elevation.pk), _export(history.elevation.pk, "csv")):
        assert client.get(url.replace("/t/acme/", "/t/globex/")).status_code == 404
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_the_list_filters_by_status_person_policy_and_date(history, client_for) -> None:
    w = history
    with time_machine.travel(AT + timedelta(days=1), tick=False):
        services.policy_update(policy=w.policy, actor=w.owner, requester_roles=["viewer", "member", "admin"])
        later = ask(w, who=w.admin, justification="second")
    client = client_for(w.approver2.user)

    def pks(query: str) -> list[int]:
        html = client.get(f"{LIST}?{query}").content.decode()
        return [e.pk for e in (w.elevation, later) if f'/elevations/{e.pk}/"' in html]

    with time_machine.travel(AT + timedelta(days=1, minutes=1), tick=False):
        assert pks("") == [w.elevation.pk, later.pk]
        assert pks("status=pending") == [later.pk]
        # Its 30-minute time box ended a day ago: expired, even though the beat task never marked it.
        assert pks("status=active") == []
        assert pks("status=expired") == [w.elevation.pk]
        assert pks("status=history") == [w.elevation.pk]
        assert pks("person=ADMIN@acme.example") == [later.pk]
        assert pks(f"policy={w.policy.pk}") == [w.elevation.pk, later.pk]
        assert pks("date_from=2026-03-03") == [later.pk]
        assert pks("date_to=2026-03-02") == [w.elevation.pk]


@pytest.mark.parametrize(
    "query",
    [
        "status=nope",
        "person=not-an-email",
        "policy=999999",
        "policy=abc",
        "date_from=yesterday",
        "cursor=%%%",
        "date_from=2026-03-05&date_to=2026-03-01",
    ],
)
def test_bad_filters_are_400_with_the_reason(history, client_for, query) -> None:
    response = client_for(history.approver2.user).get(f"{LIST}?{query}")
    assert response.status_code == 400
    assert "cannot be applied" in response.content.decode()


def test_another_tenants_policy_id_is_not_a_filter_choice(history, client_for) -> None:
    from apps.access.models import Role
    from apps.breakglass.models import Policy

    globex_policy = Policy.objects.create(
        tenant=history.cast.globex,
        name="G",
        role=Role.objects.get(tenant=history.cast.globex, key="analyst"),
        approvals_required=1,
        max_duration_minutes=60,
    )
    assert client_for(history.approver2.user).get(f"{LIST}?policy={globex_policy.pk}").status_code == 400


def test_the_list_pages_with_a_flat_query_count(world, client_for, monkeypatch) -> None:
    from apps.breakglass.views import review

    monkeypatch.setattr(review, "PAGE_SIZE", 3)
    client = client_for(world.approver2.user)
    client.get(LIST)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(LIST).status_code == 200
        return len(ctx.captured_queries)

    services.policy_update(policy=world.policy, actor=world.owner, requester_roles=[])
    ask(world)
    few = queries()
    ask(world, who=world.admin)
    ask(world, who=world.owner)
    assert queries() == few
    html = client.get(LIST).content.decode()
    assert 'rel="next"' not in html
    Elevation.objects.update(status="denied")
    for who in (world.member, world.admin, world.owner):
        ask(world, who=who)
    assert 'rel="next"' in client.get(LIST).content.decode()


def test_the_dashboard_card_shows_active_elevations_and_requests_waiting(world, client_for) -> None:
    elevation = services.elevation_approve(tenant=world.cast.acme, elevation_id=ask(world).pk, approver=world.approver1)
    services.policy_update(policy=world.policy, actor=world.owner, requester_roles=[])
    ask(world, who=world.admin)
    html = client_for(world.approver2.user).get("/t/acme/").content.decode()
    assert "1 request waiting for your approval" in html
    assert "1</strong> active elevation" in html
    assert f"/break-glass/elevations/{elevation.pk}/" in html
    # The requester (no breakglass.approve, no audit.read) sees no card.
    assert "card-breakglass-title" not in client_for(world.cast.member).get("/t/acme/").content.decode()
    # The requester's own request waits for nobody's approval but theirs: the admin's card says nothing waits for them.
    assert "waiting for your approval" not in client_for(world.cast.admin).get("/t/acme/").content.decode()
