"""The elevated person sees it (#11, item 6): a banner on every console page with the role, the time
left and an "End now" button that posts (with CSRF) to the end service.

From the attacker's side: the banner never outlives the time box (no worker needed), never shows
someone else's elevation, costs no query for people without one, and "End now" without the CSRF
token changes nothing.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.access import decisions
from apps.breakglass import services
from apps.breakglass.models import Elevation
from apps.tenants.context_processors import console
from tests.breakglass.conftest import ask, member

pytestmark = pytest.mark.django_db

DASHBOARD = "/t/acme/"
AT = datetime(2026, 3, 2, 13, 28, tzinfo=UTC)


def _activate(world, minutes: int = 37) -> Elevation:
    elevation = ask(world, duration_minutes=minutes)
    return services.elevation_approve(tenant=world.cast.acme, elevation_id=elevation.pk, approver=world.approver1)


def test_the_banner_shows_role_end_time_and_time_left_on_every_page(world, client_for) -> None:
    with time_machine.travel(AT, tick=False):
        elevation = _activate(world)
        client = client_for(world.cast.member)
        for url in (DASHBOARD, "/t/acme/members/", reverse("breakglass:index", kwargs={"tenant_slug": "acme"})):
            html = client.get(url).content.decode()
            assert "Elevated access" in html, url
            assert "Developer" in html
            assert "until 14:05 UTC" in html
            assert "37 min left" in html
            assert f'action="/t/acme/break-glass/{elevation.pk}/end/"' in html
            assert "csrfmiddlewaretoken" in html
    with time_machine.travel(AT + timedelta(minutes=36, seconds=30), tick=False):
        assert "1 min left" in client_for(world.cast.member).get(DASHBOARD).content.decode()


def test_no_banner_after_the_time_box_even_without_a_worker(world, client_for) -> None:
    with time_machine.travel(AT, tick=False):
        _activate(world)
    with time_machine.travel(AT + timedelta(minutes=37), tick=False):
        html = client_for(world.cast.member).get(DASHBOARD).content.decode()
    assert "Elevated access" not in html
    assert Elevation.objects.get().status == Elevation.Status.ACTIVE  # the sweep never ran


def test_nobody_else_sees_the_banner(world, client_for) -> None:
    _activate(world)
    for user in (world.approver1.user, world.cast.owner, world.cast.viewer):
        assert "Elevated access" not in client_for(user).get(DASHBOARD).content.decode()


def test_an_ended_elevation_has_no_banner(world, client_for) -> None:
    elevation = _activate(world)
    services.elevation_end(tenant=world.cast.acme, elevation_id=elevation.pk, actor=world.member)
    assert "Elevated access" not in client_for(world.cast.member).get(DASHBOARD).content.decode()


def _context_queries(membership) -> tuple[list, int]:
    request = RequestFactory().get(DASHBOARD)
    request.user, request.tenant, request.membership = membership.user, membership.tenant, membership
    request.can = functools.partial(decisions.can, membership, tenant=membership.tenant)
    decisions.can(membership, "tenant.view")  # the entry check loaded the set
    with CaptureQueriesContext(connection) as ctx:
        rows = list(console(request)["elevation_banner"])
    return rows, len(ctx.captured_queries)


def test_the_banner_costs_no_query_without_an_elevation_and_one_with(world) -> None:
    rows, queries = _context_queries(member(world.cast, world.cast.member))
    assert (rows, queries) == ([], 0)
    _activate(world)
    rows, queries = _context_queries(member(world.cast, world.cast.member))
    assert [row["elevation"].role.key for row in rows] == ["developer"]
    assert queries == 1


def test_end_now_needs_the_csrf_token(world) -> None:
    elevation = _activate(world)
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.cast.member)
    end = reverse("breakglass:end", kwargs={"tenant_slug": "acme", "pk": elevation.pk})
    assert client.post(end).status_code == 403
    elevation.refresh_from_db()
    assert elevation.status == Elevation.Status.ACTIVE
    client.get(DASHBOARD)  # the page sets the CSRF cookie the banner's form posts with
    token = client.cookies["csrftoken"].value
    response = client.post(end, {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    elevation.refresh_from_db()
    assert elevation.status == Elevation.Status.ENDED
    assert not decisions.can(member(world.cast, world.cast.member), "dataset.write")
    assert "Elevated access" not in client.get(DASHBOARD).content.decode()
