"""Denied checks: the decision log with filters, keyset pages and a count by (subject, action)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.access import decisions, services
from apps.access.models import DeniedDecision
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db

DENIED = "/t/acme/access/denied/"
HTMX = {"HTTP_HX_REQUEST": "true"}
DAY = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)


def _deny(tenant, member: Membership, action: str, when: datetime, **extra) -> DeniedDecision:
    return DeniedDecision.objects.create(
        tenant=tenant,
        occurred_at=when,
        subject_type="member",
        subject_id=str(member.pk),
        subject_display=member.user.email,
        action=action,
        reasons=[f"no role grants {action}"],
        **extra,
    )


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    cast.viewer_m = Membership.objects.select_related("user").get(tenant=cast.acme, user=cast.viewer)
    cast.member_m = Membership.objects.select_related("user").get(tenant=cast.acme, user=cast.member)
    globex_m = Membership.objects.select_related("user").get(tenant=cast.globex, user=cast.globex_owner)
    for offset in range(3):
        _deny(cast.acme, cast.viewer_m, "billing.manage", DAY + timedelta(hours=offset))
    _deny(cast.acme, cast.viewer_m, "audit.read", DAY - timedelta(days=5))
    _deny(cast.acme, cast.member_m, "billing.manage", DAY + timedelta(days=1))
    _deny(cast.globex, globex_m, "key.manage", DAY)
    return cast


def _summary(page: str) -> str:
    return page[page.index("Count by subject and action") : page.index("Denials <small")]


def _list(page: str) -> str:
    return page[page.index("Denials <small") :]


def test_real_denials_appear(world, client_for):
    decisions.authorize(Membership.objects.select_related("user").get(pk=world.viewer_m.pk), "sso.manage")
    page = client_for(world.admin).get(DENIED).content.decode()
    assert "<code>sso.manage</code>" in page
    assert "no role grants sso.manage" in page
    assert "<code>key.manage</code>" not in page  # globex's


def test_summary_counts_by_subject_and_action_most_frequent_first(world, client_for):
    summary = _summary(client_for(world.admin).get(DENIED).content.decode())
    rows = summary.split("<tr>")[2:]
    assert "viewer@acme.example" in rows[0]
    assert "<code>billing.manage</code>" in rows[0]
    assert "<td>3</td>" in rows[0]
    assert len(rows) == 3
    assert all("<td>1</td>" in row for row in rows[1:])


def test_filter_by_subject_email_or_id_and_action(world, client_for):
    client = client_for(world.admin)
    by_email = client.get(DENIED, {"subject": "VIEWER@acme.example"}).content.decode()
    assert _list(by_email).count("<code>billing.manage</code>") == 3
    assert "<code>audit.read</code>" in _list(by_email)
    assert "member@acme.example" not in _list(by_email)
    by_id = client.get(DENIED, {"subject": str(world.member_m.pk)}).content.decode()
    assert "member@acme.example" in _list(by_id)
    assert "viewer@acme.example" not in _list(by_id)
    by_action = client.get(DENIED, {"action": "audit.read"}).content.decode()
    assert _list(by_action).count("<code>audit.read</code>") == 1
    assert "billing.manage" not in _list(by_action)


def test_date_range_filters_list_and_counts(world, client_for):
    page = client_for(world.admin).get(DENIED, {"date_from": "2026-03-10", "date_to": "2026-03-10"}).content.decode()
    summary = _summary(page)
    assert "<td>3</td>" in summary
    assert "member@acme.example" not in summary  # the 11th
    assert "audit.read" not in summary  # the 5th
    assert _list(page).count("<time") == 3


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"action": "nuke.all"}, "is not an action in the permission catalog"),
        ({"date_from": "yesterday"}, "Enter a date as YYYY-MM-DD."),
        ({"date_from": "2026-03-10", "date_to": "2026-03-01"}, "must not be before"),
        ({"subject": "not an email"}, "Enter a member&#x27;s e-mail address or member id."),
        ({"subject": "99999999999999999999999"}, "No member has this id."),
        ({"subject": "x" * 300}, "at most 254 characters"),
        ({"cursor": "garbage!"}, "This page link is invalid"),
    ],
)
def test_bad_filters_are_400_with_errors(world, client_for, params, message):
    client = client_for(world.admin)
    response = client.get(DENIED, params)
    assert response.status_code == 400
    assert message in response.content.decode()
    partial = client.get(DENIED, params, **HTMX)
    assert partial.status_code == 400
    assert message in partial.content.decode()
    assert "<html" not in partial.content.decode()


def test_keyset_pagination_walks_every_row_once(world, client_for):
    for index in range(120):
        _deny(world.acme, world.viewer_m, "prompt.create", DAY + timedelta(minutes=index))
    client = client_for(world.admin)
    seen = 0
    url, params = DENIED, {"action": "prompt.create"}
    pages = 0
    while True:
        page = client.get(url, params).content.decode()
        pages += 1
        seen += _list(page).count("<time")
        if 'rel="next"' not in page:
            break
        older = page.split('rel="next" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        url, params = older, None
    assert (pages, seen) == (3, 120)


def test_query_count_does_not_grow_with_rows(world, client_for):
    client = client_for(world.admin)

    def measure() -> int:
        client.get(DENIED)
        with CaptureQueriesContext(connection) as queries:
            assert client.get(DENIED).status_code == 200
        return len(queries.captured_queries)

    few = measure()
    for index in range(80):
        _deny(world.acme, world.member_m, f"{['audit.read', 'sso.manage'][index % 2]}", DAY + timedelta(seconds=index))
    assert measure() == few


def test_explain_link_is_offered_to_role_managers(world, client_for):
    page = client_for(world.admin).get(DENIED).content.decode()
    assert f"/t/acme/access/explain/?member={world.viewer_m.pk}&amp;action=billing.manage" in page
