"""Issue #8 item 3: one permission module; ``can`` and the nav decide from the memoised permission set.

Attacker's and operator's view: a display check must never write to the
decision log (an admin reading denied checks would see noise a page made up),
the nav must not cost a query per entry, a cold decision costs at most two
queries, and a grant in another tenant never counts here.
"""

from __future__ import annotations

import functools

import pytest
from django.db import connection
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext

from apps.access import decisions, permsets, services
from apps.access.decorators import tenant_view
from apps.access.models import DeniedDecision
from apps.tenants.context_processors import NAV_ITEMS, console
from apps.tenants.models import Membership
from tests.catalog.factories import DatasetFactory

pytestmark = pytest.mark.django_db


def _fresh(cast, user, tenant=None) -> Membership:
    return Membership.objects.select_related("tenant").get(tenant=tenant or cast.acme, user=user)


def test_can_never_writes_to_the_decision_log(cast) -> None:
    viewer = _fresh(cast, cast.viewer)
    assert not decisions.can(viewer, "role.manage")
    assert not decisions.can(viewer, "dataset.read", DatasetFactory(tenant=cast.acme))
    assert not DeniedDecision.objects.exists()
    assert not decisions.authorize(viewer, "role.manage")
    assert DeniedDecision.objects.count() == 1


def test_a_cold_decision_costs_at_most_two_queries(cast) -> None:
    services.builtin_roles_seed(tenant=cast.acme)
    dataset = DatasetFactory(tenant=cast.acme)
    services.grant_assign(action="dataset.write", obj=dataset, membership=_fresh(cast, cast.viewer))
    permsets.clear_local_cache()
    viewer = _fresh(cast, cast.viewer)
    with CaptureQueriesContext(connection) as ctx:
        assert decisions.authorize(viewer, "dataset.write", dataset, log_denial=False)
    assert len(ctx.captured_queries) <= 2


def test_the_nav_asks_the_memoised_permission_set_only(cast) -> None:
    owner = _fresh(cast, cast.owner)
    request = RequestFactory().get("/t/acme/")
    request.user, request.tenant, request.membership = cast.owner, cast.acme, owner
    request.can = functools.partial(decisions.can, owner, tenant=cast.acme)  # as tenant_view sets it
    decisions.can(owner, "tenant.view")  # the entry check loaded the set
    with CaptureQueriesContext(connection) as ctx:
        items = list(console(request)["nav_items"])
    # Permissions cost nothing; the one query is the break-glass badge's COUNT (an owner approves).
    assert len(ctx.captured_queries) == 1
    assert len(items) == len(NAV_ITEMS) + 1  # plus "Break-glass", which is not a one-permission entry
    assert not DeniedDecision.objects.exists()


def test_a_grant_in_another_tenant_is_not_part_of_this_tenants_permission_set(cast) -> None:
    both = Membership.objects.create(tenant=cast.acme, user=cast.globex_owner, role="viewer", status="active")
    theirs = DatasetFactory(tenant=cast.globex)
    services.grant_assign(action="dataset.read", obj=theirs, membership=_fresh(cast, cast.globex_owner, cast.globex))
    acme_side = _fresh(cast, cast.globex_owner)
    assert acme_side.pk == both.pk
    assert not decisions.can(acme_side, "dataset.read", scope="any_object", for_reading=True)
    assert permsets.for_membership(acme_side).objects == {}
    globex_side = _fresh(cast, cast.globex_owner, cast.globex)
    assert str(theirs.pk) in permsets.for_membership(globex_side).objects["dataset.read"]


def test_any_object_scope_needs_a_grant_of_that_very_action(cast) -> None:
    dataset = DatasetFactory(tenant=cast.acme)
    services.grant_assign(action="dataset.write", obj=dataset, membership=_fresh(cast, cast.viewer))
    viewer = _fresh(cast, cast.viewer)
    assert decisions.can(viewer, "dataset.write", scope="any_object")
    assert not decisions.can(viewer, "dataset.read", scope="any_object")
    # Without the scope, an object grant is never a tenant-wide permission.
    assert not decisions.can(viewer, "dataset.write")


def test_any_object_scope_is_refused_for_permissions_that_cannot_be_granted_on_an_object() -> None:
    with pytest.raises(ValueError, match="cannot be granted on an object"):
        tenant_view("role.manage", scope="any_object")


def test_restrict_agrees_with_authorize_row_by_row(cast) -> None:
    services.builtin_roles_seed(tenant=cast.acme)
    rows = [DatasetFactory(tenant=cast.acme, classification=c) for c in ("public", "confidential", "restricted")]
    services.grant_assign(action="dataset.read", obj=rows[2], membership=_fresh(cast, cast.viewer))
    for user in (cast.owner, cast.member, cast.viewer):
        subject = _fresh(cast, user)
        listed = set(decisions.restrict(rows[0].__class__.objects.all(), subject, "dataset.read"))
        allowed = {row for row in rows if decisions.can(subject, "dataset.read", row, for_reading=True)}
        assert listed == allowed, user.email


def test_held_permissions_are_tenant_wide_only(cast) -> None:
    dataset = DatasetFactory(tenant=cast.acme)
    services.grant_assign(action="dataset.read", obj=dataset, membership=_fresh(cast, cast.viewer))
    viewer = _fresh(cast, cast.viewer)
    assert "dataset.read" not in decisions.held_permissions(viewer)
    assert decisions.held_permissions(viewer, tenant=cast.globex) == frozenset()
