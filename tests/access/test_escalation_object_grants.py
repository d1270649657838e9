"""Issue #7 item 5: binding a role hands out its object grants, so the no-escalation rule covers them.

The black-box run: the owner gives viewer@acme a custom role with ``role.manage``
but no ``dataset.read``; the viewer binds "Data steward" (which carries
``dataset.read`` on the restricted payroll dataset) to themself, or to an IdP
group they are in. Both are refused by the service and by the console, and
nothing is bound.
"""

from __future__ import annotations

import pytest

from apps.access import decisions, services
from apps.access.models import Role, RoleBinding
from apps.access.services import AccessError
from apps.catalog.models import Dataset
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    cast.payroll = Dataset.objects.create(tenant=cast.acme, name="payroll-2026", classification="restricted")
    cast.steward = services.role_create(
        tenant=cast.acme, key="data-steward", name="Data steward", permissions=["tenant.view"]
    )
    services.grant_assign(action="dataset.read", obj=cast.payroll, role=cast.steward)
    cast.viewer_m = Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=cast.viewer)
    Membership.objects.filter(pk=cast.viewer_m.pk).update(idp_groups=["hr-analytics"])
    cast.viewer_m.refresh_from_db()
    rolemgr = services.role_create(tenant=cast.acme, key="role-admin", name="Role admin", permissions=["role.manage"])
    services.binding_create(role=rolemgr, membership=cast.viewer_m)
    return cast


def _viewer(world) -> Membership:
    return Membership.objects.select_related("tenant", "user").get(pk=world.viewer_m.pk)


def test_binding_a_role_with_an_unheld_object_grant_to_oneself_is_refused(world) -> None:
    with pytest.raises(AccessError, match=r"dataset\.read on dataset “payroll-2026”"):
        services.binding_create(role=world.steward, membership=_viewer(world), actor=_viewer(world))
    assert not RoleBinding.objects.filter(role=world.steward).exists()
    assert not decisions.authorize(_viewer(world), "dataset.read", world.payroll, log_denial=False)


def test_binding_it_to_an_idp_group_one_is_in_is_refused(world) -> None:
    with pytest.raises(AccessError, match=r"dataset\.read"):
        services.binding_create(role=world.steward, idp_group="hr-analytics", actor=_viewer(world))
    assert not RoleBinding.objects.filter(role=world.steward).exists()


def test_the_console_refuses_too(world, client_for) -> None:
    client = client_for(world.viewer)
    url = f"/t/acme/access/roles/{world.steward.pk}/bindings/add/"
    response = client.post(url, {"member": world.viewer_m.pk, "idp_group": ""})
    assert response.status_code == 400
    response = client.post(url, {"member": "", "idp_group": "hr-analytics"})
    assert response.status_code == 400
    assert not RoleBinding.objects.filter(role=world.steward).exists()


def test_whoever_holds_the_grant_may_bind_the_role(world) -> None:
    owner = Membership.objects.select_related("tenant", "user").get(tenant=world.acme, user=world.owner)
    services.binding_create(role=world.steward, idp_group="hr-analytics", actor=owner)
    assert decisions.authorize(_viewer(world), "dataset.read", world.payroll, log_denial=False)


def test_raising_a_role_clearance_needs_the_clearance(world) -> None:
    # An admin holds dataset.read only up to confidential: they cannot make a role that reads every
    # restricted dataset, neither at creation nor by raising an existing role's clearance.
    admin = Membership.objects.select_related("tenant", "user").get(tenant=world.acme, user=world.admin)
    with pytest.raises(AccessError, match="restricted"):
        services.role_create(
            tenant=world.acme,
            key="all-hr",
            name="All HR",
            permissions=["dataset.read"],
            clearance="restricted",
            actor=admin,
        )
    role = services.role_create(tenant=world.acme, key="hr", name="HR", permissions=["dataset.read"], actor=admin)
    with pytest.raises(AccessError, match="restricted"):
        services.role_update(role=role, name="HR", permissions=["dataset.read"], clearance="restricted", actor=admin)
    assert Role.objects.get(pk=role.pk).clearance == "confidential"
