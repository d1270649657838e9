"""Object-level grants (django-guardian) through the one decision point."""

from __future__ import annotations

import pytest

from apps.access import decisions, services
from apps.access.models import Role
from apps.catalog.models import Dataset, Tool
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    services.builtin_roles_seed(tenant=cast.globex)
    cast.secret = Dataset.objects.create(tenant=cast.acme, name="payroll", classification="restricted")
    cast.other = Dataset.objects.create(tenant=cast.acme, name="marketing")
    cast.search = Tool.objects.create(tenant=cast.acme, name="web-search", allowlisted=True)
    cast.globex_data = Dataset.objects.create(tenant=cast.globex, name="globex-payroll")
    return cast


def _fresh(cast, user, tenant=None) -> Membership:
    return Membership.objects.select_related("tenant", "user").get(tenant=tenant or cast.acme, user=user)


def test_member_grant_allows_that_object_only(data) -> None:
    viewer = _fresh(data, data.viewer)
    services.grant_assign(action="dataset.read", obj=data.secret, membership=viewer)
    decision = decisions.authorize(_fresh(data, data.viewer), "dataset.read", data.secret)
    assert decision.allowed
    assert decision.reasons == (f"direct grant to member: dataset.read on dataset {data.secret.pk}",)
    assert not decisions.authorize(_fresh(data, data.viewer), "dataset.read", data.other)
    assert not decisions.authorize(_fresh(data, data.viewer), "dataset.read")


def test_role_grant_reaches_members_of_that_role(data) -> None:
    role = services.role_create(tenant=data.acme, key="payroll", name="Payroll", permissions=["tenant.view"])
    services.grant_assign(action="dataset.read", obj=data.secret, role=role)
    services.binding_create(role=role, membership=_fresh(data, data.viewer))
    decision = decisions.authorize(_fresh(data, data.viewer), "dataset.read", data.secret)
    assert decision.allowed
    assert "role Payroll (assigned)" in decision.reasons[0]


def test_grant_to_a_builtin_role_reaches_its_members(data) -> None:
    viewer_role = Role.objects.for_tenant(data.acme).get(key="viewer")
    services.grant_assign(action="tool.execute", obj=data.search, role=viewer_role)
    assert decisions.authorize(_fresh(data, data.viewer), "tool.execute", data.search)


def test_revoked_grant_is_denied_on_the_very_next_call(data) -> None:
    viewer = _fresh(data, data.viewer)
    services.grant_assign(action="dataset.read", obj=data.secret, membership=viewer)
    assert decisions.authorize(_fresh(data, data.viewer), "dataset.read", data.secret)
    services.grant_revoke(action="dataset.read", obj=data.secret, membership=viewer)
    assert not decisions.authorize(_fresh(data, data.viewer), "dataset.read", data.secret)


def test_grants_cannot_cross_tenants(data) -> None:
    with pytest.raises(services.AccessError, match="cross tenants"):
        services.grant_assign(action="dataset.read", obj=data.globex_data, membership=_fresh(data, data.viewer))
    globex_role = Role.objects.for_tenant(data.globex).get(key="viewer")
    with pytest.raises(services.AccessError, match="cross tenants"):
        services.grant_assign(action="dataset.read", obj=data.secret, role=globex_role)


def test_another_tenants_resource_is_denied_even_to_an_owner(data) -> None:
    decision = decisions.authorize(_fresh(data, data.owner), "dataset.read", data.globex_data)
    assert not decision.allowed
    assert decision.reasons == ("resource belongs to another tenant",)


def test_actions_that_are_not_object_scoped_cannot_be_granted_on_objects(data) -> None:
    with pytest.raises(services.AccessError, match="single object"):
        services.grant_assign(action="billing.view", obj=data.secret, membership=_fresh(data, data.viewer))
    with pytest.raises(services.AccessError, match="tools only"):
        services.grant_assign(action="tool.execute", obj=data.secret, membership=_fresh(data, data.viewer))


def test_deleting_a_role_removes_its_object_grants(data) -> None:
    role = services.role_create(tenant=data.acme, key="payroll", name="Payroll", permissions=[])
    services.grant_assign(action="dataset.read", obj=data.secret, role=role)
    services.role_delete(role=role)
    # A new role with the same key must not inherit the old role's grants.
    again = services.role_create(tenant=data.acme, key="payroll", name="Payroll", permissions=[])
    services.binding_create(role=again, membership=_fresh(data, data.viewer))
    assert not decisions.authorize(_fresh(data, data.viewer), "dataset.read", data.secret, log_denial=False)
