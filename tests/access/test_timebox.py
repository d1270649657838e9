"""Issue #11 item 3: a time-boxed binding (a break-glass elevation's grant) never outlives its time box.

Attacker's view: a member whose elevation ran out keeps clicking, and nobody
has run the worker. Every decision compares the binding's end with the clock,
whatever the request memo or the process cache hold. These tests commit for
real (``transaction=True``) so the process cache is really used.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.access import decisions, permsets, services
from apps.access.models import Role
from apps.tenants.models import Membership, Tenant

pytestmark = pytest.mark.django_db(transaction=True)
REASON = "break-glass elevation #12, approved by owner@acme.example, until 14:05 UTC"


@pytest.fixture
def world(cast) -> Iterator:
    services.builtin_roles_seed(tenant=cast.acme)
    permsets.clear_local_cache()
    yield cast
    permsets.clear_local_cache()


def _entry(cast, user) -> Membership:
    return Membership.objects.select_related("tenant").get(tenant=cast.acme, user=user)


def _elevate(cast, minutes: int = 30):
    admin = Role.objects.get(tenant=cast.acme, key="admin", builtin=True)
    return services.binding_timebox_create(
        role=admin,
        membership=_entry(cast, cast.viewer),
        expires_at=timezone.now() + timedelta(minutes=minutes),
        reason=REASON,
    )


def test_elevation_grants_and_says_so_in_the_reason(world) -> None:
    _elevate(world)
    decision = decisions.authorize(_entry(world, world.viewer), "member.manage")
    assert decision.allowed
    assert any(REASON in reason for reason in decision.reasons)


def test_start_and_end_bump_the_access_version(world) -> None:
    before = Tenant.objects.get(pk=world.acme.pk).access_version
    binding = _elevate(world)
    started = Tenant.objects.get(pk=world.acme.pk).access_version
    assert started == before + 1
    assert services.binding_timebox_end(tenant_id=world.acme.pk, binding_id=binding.pk)
    assert Tenant.objects.get(pk=world.acme.pk).access_version == started + 1
    assert not decisions.can(_entry(world, world.viewer), "member.manage")
    # Ending twice changes nothing but is harmless.
    assert not services.binding_timebox_end(tenant_id=world.acme.pk, binding_id=binding.pk)


def test_expired_elevation_refused_with_warm_memo_and_cache_and_no_worker(world) -> None:
    _elevate(world, minutes=30)
    warm = _entry(world, world.viewer)
    assert decisions.can(warm, "member.manage")  # memo on ``warm``, and the set in the process LRU
    fresh = _entry(world, world.viewer)
    with CaptureQueriesContext(connection) as queries:
        assert decisions.can(fresh, "member.manage")
    assert len(queries) == 0  # served from the LRU
    with time_machine.travel(timezone.now() + timedelta(minutes=30, seconds=1)):
        # The same membership object (memo) and a new request (LRU hit on the same version).
        assert not decisions.can(warm, "member.manage")
        decision = decisions.authorize(_entry(world, world.viewer), "member.manage")
        assert not decision.allowed
        # What the viewer holds anyway stays.
        assert decisions.can(warm, "tenant.view")
        # A cold load after the end does not load the binding at all.
        permsets.clear_local_cache()
        assert not decisions.can(_entry(world, world.viewer), "member.manage")


def test_elevation_on_top_of_a_permanent_role_ends_without_taking_the_role(world) -> None:
    analyst = Role.objects.get(tenant=world.acme, key="analyst", builtin=True)
    viewer = _entry(world, world.viewer)
    services.binding_create(role=analyst, membership=viewer)
    services.binding_timebox_create(
        role=analyst, membership=viewer, expires_at=timezone.now() + timedelta(minutes=5), reason=REASON
    )
    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        assert decisions.can(_entry(world, world.viewer), "dataset.read")


def test_time_box_refused_for_another_tenant_and_in_the_past(world) -> None:
    from apps.access.escalation import AccessError

    admin = Role.objects.get(tenant=world.acme, key="admin", builtin=True)
    outsider = Membership.objects.get(tenant=world.globex, user=world.globex_owner)
    with pytest.raises(AccessError):
        services.binding_timebox_create(
            role=admin, membership=outsider, expires_at=timezone.now() + timedelta(hours=1), reason=REASON
        )
    with pytest.raises(AccessError):
        services.binding_timebox_create(
            role=admin, membership=_entry(world, world.viewer), expires_at=timezone.now(), reason=REASON
        )


def test_roles_pages_do_not_list_time_boxes(world) -> None:
    from apps.access import selectors

    binding = _elevate(world)
    admin = binding.role
    assert binding.pk not in [b.pk for b in selectors.role_bindings(tenant=world.acme, role=admin)]
    assert selectors.binding_get(tenant=world.acme, role=admin, binding_id=binding.pk) is None
