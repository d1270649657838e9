"""API clients are subjects of the one decision point: roles, grants, escalation, tenant bounds, disable."""

from __future__ import annotations

import pytest

from apps.access import decisions
from apps.access import services as access_services
from apps.access.escalation import AccessError
from apps.access.models import DeniedDecision, Role
from apps.catalog.models import Dataset, Tool
from apps.keys import services
from apps.keys.models import ApiClient
from apps.tenants.models import Membership
from tests.keys.helpers import make_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def data(cast):
    access_services.builtin_roles_seed(tenant=cast.acme)
    access_services.builtin_roles_seed(tenant=cast.globex)
    cast.secret = Dataset.objects.create(tenant=cast.acme, name="payroll", classification="restricted")
    cast.other = Dataset.objects.create(tenant=cast.acme, name="marketing")
    cast.search = Tool.objects.create(tenant=cast.acme, name="web-search", allowlisted=True)
    cast.globex_data = Dataset.objects.create(tenant=cast.globex, name="globex-payroll")
    return cast


def _fresh(client: ApiClient) -> ApiClient:
    # A new object per "request", as the token check hands out after a change.
    return ApiClient.objects.select_related("tenant").get(pk=client.pk)


def _member(cast, user) -> Membership:
    return Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=user)


def test_client_acts_with_its_builtin_role(data) -> None:
    client = make_client(tenant=data.acme, builtin_role="developer").client
    allowed = decisions.authorize(_fresh(client), "dataset.read", data.other)
    assert allowed.allowed
    assert "role Developer (client role)" in allowed.reasons[0]
    assert not decisions.authorize(_fresh(client), "member.manage")
    # Restricted data: the role's clearance holds for clients as for members.
    assert not decisions.authorize(_fresh(client), "dataset.read", data.secret)


def test_client_acts_with_a_custom_role(data) -> None:
    role = access_services.role_create(tenant=data.acme, key="reader", name="Reader", permissions=["dataset.read"])
    client = make_client(tenant=data.acme, role=role).client
    assert decisions.authorize(_fresh(client), "dataset.read", data.other)
    assert not decisions.authorize(_fresh(client), "tool.execute", data.search)


def test_denial_is_logged_as_the_client(data) -> None:
    client = make_client(tenant=data.acme, builtin_role="viewer").client
    assert not decisions.authorize(_fresh(client), "tool.execute", data.search)
    row = DeniedDecision.objects.get(action="tool.execute")
    assert row.subject_type == "client"
    assert row.subject_id == str(client.pk)
    assert client.client_id in row.subject_display


def test_object_grant_to_a_client_opens_that_object_only(data) -> None:
    client = make_client(tenant=data.acme, builtin_role="viewer").client
    services.apiclient_grant_assign(client=client, action="dataset.read", obj=data.secret)
    decision = decisions.authorize(_fresh(client), "dataset.read", data.secret)
    assert decision.allowed
    assert decision.reasons == (f"direct grant to client: dataset.read on dataset {data.secret.pk}",)
    assert not decisions.authorize(_fresh(client), "dataset.read", data.other)
    qs = decisions.restrict(Dataset.objects.all(), _fresh(client), "dataset.read")
    assert list(qs) == [data.secret]
    services.apiclient_grant_revoke(client=client, action="dataset.read", obj=data.secret)
    assert not decisions.authorize(_fresh(client), "dataset.read", data.secret)


def test_grant_to_the_clients_builtin_role_reaches_it(data) -> None:
    client = make_client(tenant=data.acme, builtin_role="viewer").client
    viewer_role = Role.objects.for_tenant(data.acme).get(key="viewer")
    access_services.grant_assign(action="tool.execute", obj=data.search, role=viewer_role)
    assert decisions.authorize(_fresh(client), "tool.execute", data.search)


def test_client_never_reaches_another_tenant(data) -> None:
    client = make_client(tenant=data.acme, builtin_role="owner").client
    decision = decisions.authorize(_fresh(client), "dataset.read", data.globex_data)
    assert not decision.allowed
    assert not decisions.authorize(_fresh(client), "dataset.read", tenant=data.globex)
    with pytest.raises(AccessError):
        services.apiclient_grant_assign(client=client, action="dataset.read", obj=data.globex_data)


def test_disabled_client_is_refused(data) -> None:
    client = make_client(tenant=data.acme, builtin_role="owner").client
    services.apiclient_disable(client=client)
    decision = decisions.authorize(_fresh(client), "dataset.read", data.other)
    assert decision.reasons == ("client is disabled",)


# --- escalation: nobody creates a client holding more than they hold ----------------------------


def test_developer_cannot_create_an_admin_client(data) -> None:
    developer = _member(data, data.member)
    developer.role = "developer"
    developer.save(update_fields=["role"])
    developer = _member(data, data.member)
    with pytest.raises(AccessError):
        services.apiclient_create(tenant=data.acme, name="sneaky", builtin_role="admin", actor=developer)
    assert not ApiClient.objects.filter(name="sneaky").exists()
    created = services.apiclient_create(tenant=data.acme, name="ok", builtin_role="developer", actor=developer)
    assert created.client.created_by_id == data.member.pk


def test_cannot_create_a_client_with_a_custom_role_above_oneself(data) -> None:
    role = access_services.role_create(tenant=data.acme, key="keys", name="Keys", permissions=["key.manage"])
    developer = _member(data, data.member)
    developer.role = "developer"
    developer.save(update_fields=["role"])
    with pytest.raises(AccessError):
        services.apiclient_create(tenant=data.acme, name="x", role=role, actor=_member(data, data.member))


def test_cannot_grant_a_client_what_one_may_not_do(data) -> None:
    client = make_client(tenant=data.acme, builtin_role="viewer").client
    with pytest.raises(AccessError):
        # The admin is cleared up to confidential: a restricted dataset needs an explicit grant first.
        services.apiclient_grant_assign(
            client=client, action="dataset.read", obj=data.secret, actor=_member(data, data.admin)
        )


def test_role_of_another_tenant_refused(data) -> None:
    globex_role = access_services.role_create(tenant=data.globex, key="r", name="R", permissions=["tenant.view"])
    with pytest.raises(services.KeysError):
        services.apiclient_create(tenant=data.acme, name="x", role=globex_role)
