"""event_list: keyset pagination and filters, scoped to one tenant (or the platform)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters, event_list
from apps.audit.services import Actor
from apps.core.pagination import InvalidCursorError

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


def all_pages(tenant, filters=None, size=4):
    ids, cursor, pages = [], None, 0
    while True:
        page = event_list(tenant=tenant, filters=filters or AuditFilters(), cursor=cursor, size=size)
        ids += [event.pk for event in page.rows]
        pages += 1
        if page.next_cursor is None:
            return ids, pages
        cursor = page.next_cursor


def test_keyset_pages_have_no_duplicates_or_gaps_with_equal_timestamps(cast, record_at):
    # 23 events over 5 distinct instants: many rows share occurred_at, and page
    # boundaries (size 4) fall inside groups of equal timestamps.
    for index in range(23):
        record_at("x.y", at=T0 + timedelta(seconds=index % 5), tenant=cast.acme)
    expected = list(
        AuditEvent.objects.for_tenant(cast.acme).order_by("-occurred_at", "-id").values_list("pk", flat=True)
    )
    ids, pages = all_pages(cast.acme)
    assert ids == expected
    assert len(set(ids)) == 23
    assert pages == 6


def test_exact_multiple_of_page_size_has_no_empty_last_page(cast, record_at):
    for index in range(8):
        record_at("x.y", at=T0 + timedelta(seconds=index), tenant=cast.acme)
    ids, pages = all_pages(cast.acme)
    assert (len(ids), pages) == (8, 2)


def test_malformed_cursor_raises(cast):
    with pytest.raises(InvalidCursorError):
        event_list(tenant=cast.acme, filters=AuditFilters(), cursor="%%%garbage", size=5)


def test_other_tenants_events_never_appear(cast, record_at):
    record_at("a.mine", tenant=cast.acme)
    record_at("g.theirs", tenant=cast.globex)
    record_at("p.platform")
    actions = {
        event.action for event in event_list(tenant=cast.acme, filters=AuditFilters(), cursor=None, size=50).rows
    }
    assert actions == {"a.mine"}
    everything = event_list(tenant=None, filters=AuditFilters(), cursor=None, size=50).rows
    assert {event.action for event in everything} >= {"a.mine", "g.theirs", "p.platform"}
    only_platform = event_list(tenant=None, filters=AuditFilters(platform_only=True), cursor=None, size=50).rows
    assert {event.action for event in only_platform} == {"p.platform"}
    only_globex = event_list(tenant=None, filters=AuditFilters(tenant=cast.globex), cursor=None, size=50).rows
    assert {event.action for event in only_globex} == {"g.theirs"}


@pytest.fixture
def varied(cast, record_at):
    owner, admin = Actor.for_user(cast.owner), Actor.for_user(cast.admin)
    # The owner's old events carry an e-mail they no longer have: found by id anyway.
    renamed = Actor(owner.type, owner.id, "old-address@acme.example")
    rows = [
        ("member.invite", owner, "success", "membership", "1", T0),
        ("member.remove", admin, "success", "membership", "2", T0 + timedelta(days=1)),
        ("member.role_change", renamed, "denied", "membership", "1", T0 + timedelta(days=2)),
        ("role.create", admin, "failure", "role", "7", T0 + timedelta(days=3, hours=5)),
        ("auth.login_failed", Actor.anonymous("Mallory@Evil.example"), "failure", "", "", T0 + timedelta(days=4)),
        ("apiclient.call", Actor("api_client", "cli_42", "CI bot"), "success", "", "", T0 + timedelta(days=5)),
    ]
    for action, actor, result, target_type, target_id, at in rows:
        record_at(
            action, at=at, tenant=cast.acme, actor=actor, result=result, target_type=target_type, target_id=target_id
        )
    record_at("member.invite", at=T0, tenant=cast.globex, actor=owner)  # same actor, other tenant


def actions(cast, **filters):
    page = event_list(tenant=cast.acme, filters=AuditFilters(**filters), cursor=None, size=50)
    return sorted(event.action for event in page.rows)


@pytest.mark.usefixtures("varied")
def test_filters(cast):
    assert actions(cast, actor="OWNER@acme.example") == ["member.invite", "member.role_change"]
    assert actions(cast, actor=str(cast.admin.pk)) == ["member.remove", "role.create"]
    assert actions(cast, actor="mallory@evil.example") == ["auth.login_failed"]  # no such user: display snapshot
    assert actions(cast, actor="cli_42") == ["apiclient.call"]
    assert actions(cast, actor="nobody@nowhere.example") == []
    assert actions(cast, action="member.invite") == ["member.invite"]
    assert actions(cast, action="member.") == ["member.invite", "member.remove", "member.role_change"]
    assert actions(cast, action="member*") == ["member.invite", "member.remove", "member.role_change"]
    assert actions(cast, action="member") == []
    assert actions(cast, result="failure") == ["auth.login_failed", "role.create"]
    assert actions(cast, target_type="membership") == ["member.invite", "member.remove", "member.role_change"]
    assert actions(cast, target_type="membership", target_id="1") == ["member.invite", "member.role_change"]
    window = {"occurred_from": T0 + timedelta(days=1), "occurred_before": T0 + timedelta(days=3, hours=5)}
    assert actions(cast, **window) == ["member.remove", "member.role_change"]
    assert actions(cast, actor=cast.admin.email, **window) == ["member.remove"]
