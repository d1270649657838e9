"""Issue #8 item 3: the tenant's access version lives on the tenant row, bumped in the change's transaction.

Attacker's view: a member whose grant was revoked keeps clicking. The process
cache of permission sets must never hand them the set from before the
revocation: not on the next request, not through a tenant object some code
kept from before the change, not after a change that rolled back and whose
version number the next change reuses, and not because two concurrent changes
counted as one. These tests commit for real (``transaction=True``): inside the
test's own transaction nothing is ever cached, so the cache would go untested.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from apps.access import decisions, permsets, services
from apps.catalog.models import Dataset
from apps.tenants.models import Membership, Tenant

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(cast) -> Iterator:
    services.builtin_roles_seed(tenant=cast.acme)
    cast.x = Dataset.objects.create(tenant=cast.acme, name="payroll")
    cast.y = Dataset.objects.create(tenant=cast.acme, name="marketing")
    permsets.clear_local_cache()
    yield cast
    permsets.clear_local_cache()


def _entry(cast, user) -> Membership:
    """The membership as the tenant entry loads it on every request: tenant row joined."""
    return Membership.objects.select_related("tenant").get(tenant=cast.acme, user=user)


def _version(cast) -> int:
    return Tenant.objects.values_list("access_version", flat=True).get(pk=cast.acme.pk)


def test_a_revoked_grant_is_refused_on_the_very_next_request(world, client_for) -> None:
    viewer = _entry(world, world.viewer)
    for dataset in (world.x, world.y):
        services.grant_assign(action="dataset.read", obj=dataset, membership=viewer)
    client = client_for(world.viewer)
    page = f"/t/acme/catalog/datasets/{world.x.pk}/"
    assert client.get(page).status_code == 200  # the set is now in this process's cache
    assert client.get(page).status_code == 200  # … and served from it
    services.grant_revoke(action="dataset.read", obj=world.x, membership=_entry(world, world.viewer))
    assert client.get(page).status_code == 404
    assert client.get(f"/t/acme/catalog/datasets/{world.y.pk}/").status_code == 200


def test_a_new_request_with_a_warm_cache_costs_no_query_beyond_the_entry(world) -> None:
    services.grant_assign(action="dataset.read", obj=world.x, membership=_entry(world, world.viewer))
    assert decisions.can(_entry(world, world.viewer), "dataset.read", world.x)  # warms the process cache
    viewer = _entry(world, world.viewer)
    with CaptureQueriesContext(connection) as ctx:
        assert decisions.authorize(viewer, "dataset.read", world.x)
        assert not decisions.authorize(viewer, "dataset.read", world.y, log_denial=False)
    assert ctx.captured_queries == []


def test_a_tenant_object_from_before_the_change_does_not_bring_the_old_set_back(world) -> None:
    services.grant_assign(action="dataset.read", obj=world.x, membership=_entry(world, world.viewer))
    before = _entry(world, world.viewer)
    stale_tenant = before.tenant
    assert decisions.can(before, "dataset.read", world.x)  # cached under the old version
    services.grant_revoke(action="dataset.read", obj=world.x, membership=_entry(world, world.viewer))

    later = Membership.objects.get(pk=before.pk)
    later.tenant = stale_tenant  # code that kept the tenant object of an earlier request
    assert not decisions.can(later, "dataset.read", world.x)
    # Saving the stale object (a rename) does not put the old version back either.
    stale_tenant.name = "Acme Renamed"
    stale_tenant.save()
    assert _version(world) > stale_tenant.access_version
    assert not decisions.can(_entry(world, world.viewer), "dataset.read", world.x)
    assert Tenant.objects.get(pk=world.acme.pk).name == "Acme Renamed"


def test_a_rolled_back_change_is_never_served_under_the_reused_version(world) -> None:
    start = _version(world)
    with transaction.atomic():
        services.grant_assign(action="dataset.read", obj=world.x, membership=_entry(world, world.viewer))
        inside = _entry(world, world.viewer)
        assert inside.tenant.access_version == start + 1
        assert decisions.can(inside, "dataset.read", world.x)  # sees its own uncommitted grant
        transaction.set_rollback(True)
    assert _version(world) == start
    # The next committed change gets the same number the rolled-back one had.
    services.role_create(tenant=world.acme, key="auditors", name="Auditors", permissions=["audit.read"])
    viewer = _entry(world, world.viewer)
    assert viewer.tenant.access_version == start + 1
    assert not decisions.can(viewer, "dataset.read", world.x)


def test_two_concurrent_changes_are_two_bumps(world) -> None:
    start = _version(world)
    viewer_pk = _entry(world, world.viewer).pk
    first_bumped = threading.Event()
    errors: list[BaseException] = []

    def change(dataset_pk: int, hold: bool) -> None:
        try:
            with transaction.atomic():
                membership = Membership.objects.select_related("tenant").get(pk=viewer_pk)
                dataset = Dataset.objects.get(pk=dataset_pk)
                services.grant_assign(action="dataset.read", obj=dataset, membership=membership)
                if hold:
                    first_bumped.set()
                    # Still uncommitted: the other change reads the same old version meanwhile.
                    threading.Event().wait(0.3)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread below
            errors.append(exc)
        finally:
            connections.close_all()

    holder = threading.Thread(target=change, args=(world.x.pk, True))
    holder.start()
    assert first_bumped.wait(10)
    other = threading.Thread(target=change, args=(world.y.pk, False))
    other.start()
    holder.join(10)
    other.join(10)
    assert errors == []
    assert _version(world) == start + 2
    viewer = _entry(world, world.viewer)
    assert decisions.can(viewer, "dataset.read", world.x)
    assert decisions.can(viewer, "dataset.read", world.y)
