"""Privilege escalation is refused by the services themselves, not only by the console forms."""

from __future__ import annotations

import pytest

from apps.access import decisions, services
from apps.access.models import Role
from apps.catalog.models import Dataset
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    return cast


def _m(cast, user) -> Membership:
    return Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=user)


def test_admin_cannot_create_a_role_with_a_permission_they_lack(acme) -> None:
    admin = _m(acme, acme.admin)
    with pytest.raises(services.AccessError, match=r"billing\.manage"):
        services.role_create(tenant=acme.acme, key="payer", name="Payer", permissions=["billing.manage"], actor=admin)
    assert not Role.objects.for_tenant(acme.acme).filter(key="payer").exists()


def test_admin_cannot_bind_the_owner_role_to_themselves(acme) -> None:
    admin = _m(acme, acme.admin)
    owner_role = Role.objects.for_tenant(acme.acme).get(key="owner")
    with pytest.raises(services.AccessError, match="do not hold"):
        services.binding_create(role=owner_role, membership=admin, actor=admin)
    with pytest.raises(services.AccessError):
        services.binding_create(role=owner_role, idp_group="everyone", actor=admin)


def test_adding_an_unheld_permission_to_an_existing_role_is_refused(acme) -> None:
    role = services.role_create(
        tenant=acme.acme, key="ops", name="Ops", permissions=["billing.manage"], actor=_m(acme, acme.owner)
    )
    admin = _m(acme, acme.admin)
    # Keeping a permission the admin lacks is fine; adding one is not.
    services.role_update(role=role, name="Ops", permissions=["billing.manage", "audit.read"], actor=admin)
    with pytest.raises(services.AccessError):
        services.role_update(
            role=role, name="Ops", permissions=["billing.manage", "billing.view"], actor=_m(acme, acme.viewer)
        )


def test_object_grant_needs_the_action_on_that_object(acme) -> None:
    dataset = Dataset.objects.create(tenant=acme.acme, name="payroll")
    viewer = _m(acme, acme.viewer)
    with pytest.raises(services.AccessError, match="may not do it yourself"):
        services.grant_assign(action="dataset.read", obj=dataset, membership=viewer, actor=viewer)
    services.grant_assign(action="dataset.read", obj=dataset, membership=viewer, actor=_m(acme, acme.owner))
    assert decisions.authorize(_m(acme, acme.viewer), "dataset.read", dataset)
