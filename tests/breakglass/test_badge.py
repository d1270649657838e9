"""The "Break-glass" nav entry and its badge: the count of requests waiting for *this* approver.

From the attacker's side: the badge must not count requests the person cannot decide (their own,
another tenant's, a policy whose approver list leaves them out, one already decided by them or
past its pending lifetime), and it must stay one COUNT query, only for approvers.
"""

from __future__ import annotations

import functools
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.access import decisions
from apps.access import services as access_services
from apps.breakglass import selectors, services
from apps.tenants.context_processors import console
from tests.breakglass.conftest import ask, member
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _nav(world, membership):
    request = RequestFactory().get("/t/acme/")
    request.user, request.tenant, request.membership = membership.user, membership.tenant, membership
    request.can = functools.partial(decisions.can, membership, tenant=membership.tenant)  # as tenant_view sets it
    decisions.can(membership, "tenant.view")  # the entry check loaded the set
    with CaptureQueriesContext(connection) as ctx:
        items = list(console(request)["nav_items"])
    entry = next((item for item in items if item["label"] == "Break-glass"), None)
    return entry, len(ctx.captured_queries)


def _count(world, membership) -> int:
    return selectors.waiting_count(tenant=world.cast.acme, membership=membership)


def test_the_badge_counts_what_the_approver_may_decide_in_one_query(world) -> None:
    elevation = ask(world)
    for who in (world.approver1, world.approver2, world.owner):
        entry, queries = _nav(world, member(world.cast, who.user))
        assert entry["badge"] == 1
        assert entry["url_name"] == "breakglass:index" if who == world.owner else "breakglass:approvals"
        assert queries == 1
        assert _count(world, who) == len(selectors.waiting_for(tenant=world.cast.acme, membership=who))
    services.elevation_approve(tenant=world.cast.acme, elevation_id=elevation.pk, approver=world.approver1)
    assert _count(world, world.approver2) == 0  # active now: nothing left to decide


def test_a_requester_gets_the_entry_without_a_badge_or_a_query(world) -> None:
    ask(world)
    entry, queries = _nav(world, world.member)
    assert entry == {**entry, "url_name": "breakglass:index", "badge": 0}
    assert queries == 0


def test_a_viewer_gets_no_entry(world) -> None:
    entry, queries = _nav(world, world.viewer)
    assert entry is None
    assert queries == 0


def test_an_admin_outside_the_approver_list_sees_nothing_waiting(world) -> None:
    ask(world)  # approver_roles are approver and owner; the admin holds breakglass.approve but is not listed
    assert not services.may_approve(policy=world.policy, membership=world.admin)
    assert _count(world, world.admin) == 0


def test_own_decided_stale_and_other_tenant_requests_are_not_counted(world) -> None:
    services.policy_update(policy=world.policy, actor=world.owner, requester_roles=["viewer", "member", "owner"])
    ask(world, who=world.owner)  # the owner's own request: approvers may decide it, the owner may not
    assert _count(world, world.owner) == 0
    assert _count(world, world.approver2) == 1
    decided = ask(world)
    services.elevation_deny(tenant=world.cast.acme, elevation_id=decided.pk, approver=world.approver2)
    assert _count(world, world.approver2) == 1  # the denied one is gone
    globex = member(world.cast, world.cast.globex_owner)
    assert selectors.waiting_count(tenant=world.cast.globex, membership=globex) == 0
    with time_machine.travel(timezone.now() + timedelta(minutes=world.policy.pending_minutes + 1)):
        assert _count(world, world.approver2) == 0  # nobody can approve it any more


def test_eligibility_through_a_bound_role_and_an_idp_group(world) -> None:
    oncall = access_services.role_create(
        tenant=world.cast.acme, key="oncall", name="On call", permissions=["tenant.view", "breakglass.approve"]
    )
    bound = MembershipFactory(tenant=world.cast.acme, user=UserFactory(email="oncall@acme.example"), role="viewer")
    access_services.binding_create(role=oncall, membership=bound)
    grouped = MembershipFactory(
        tenant=world.cast.acme, user=UserFactory(email="sre@acme.example"), role="approver", idp_groups=["sre"]
    )
    services.policy_update(policy=world.policy, actor=world.owner, approver_roles=["oncall"], approver_groups=["sre"])
    ask(world)
    bound, grouped = member(world.cast, bound.user), member(world.cast, grouped.user)
    assert _count(world, bound) == 1
    assert _count(world, grouped) == 1
    assert _count(world, world.approver1) == 0  # the approver role is no longer listed
    # The same answer as the service gives at decision time.
    for who in (bound, grouped, world.approver1):
        assert _count(world, who) == len(selectors.waiting_for(tenant=world.cast.acme, membership=who))


def test_the_badge_shows_in_the_page(world, client_for) -> None:
    ask(world)
    page = client_for(world.approver1.user).get(reverse("breakglass:approvals", kwargs={"tenant_slug": "acme"}))
    html = page.content.decode()
    assert "1 request waiting for your approval" in html
    assert 'href="/t/acme/break-glass/approvals/"' in html


def test_a_request_of_a_policy_paused_since_is_not_counted(world) -> None:
    ask(world)
    assert _count(world, world.approver1) == 1
    services.policy_update(policy=world.policy, actor=world.owner, paused=True)  # approving it is refused now
    assert _count(world, world.approver1) == 0
    services.policy_update(policy=world.policy, actor=world.owner, paused=False)
    assert _count(world, world.approver1) == 1
