"""Grants page: who may do what on each dataset and tool, grant and revoke, isolation, flat query count."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.access import decisions, services
from apps.access.models import Role
from apps.audit.models import AuditEvent
from apps.catalog.models import Dataset, Tool
from apps.tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

GRANTS = "/t/acme/access/grants/"
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    services.builtin_roles_seed(tenant=cast.globex)
    # Confidential: these tests are about grant mechanics; restricted data has its own tests (test_restricted_data.py).
    cast.payroll = Dataset.objects.create(tenant=cast.acme, name="payroll", classification="confidential")
    cast.docs = Dataset.objects.create(tenant=cast.acme, name="docs")
    cast.search = Tool.objects.create(tenant=cast.acme, name="web-search", allowlisted=True)
    cast.globex_data = Dataset.objects.create(tenant=cast.globex, name="globex-secrets")
    cast.role = services.role_create(tenant=cast.acme, key="payroll", name="Payroll", permissions=["tenant.view"])
    return cast


def _m(cast, user, tenant=None) -> Membership:
    return Membership.objects.select_related("user").get(tenant=tenant or cast.acme, user=user)


def _events(cast, action: str):
    return AuditEvent.objects.for_tenant(cast.acme).filter(action=action)


def test_page_shows_tenant_wide_roles_and_object_grants(world, client_for):
    services.grant_assign(action="dataset.read", obj=world.payroll, role=world.role)
    services.grant_assign(action="dataset.write", obj=world.payroll, membership=_m(world, world.viewer))
    page = client_for(world.admin).get(GRANTS).content.decode()
    # Tenant-wide: the built-in roles that grant dataset.read.
    tenant_wide = page[page.index("Tenant-wide") : page.index("Object grants")]
    for name in ("Analyst", "Developer", "Member", "Owner", "Admin"):
        assert name in tenant_wide
    assert "Viewer" not in tenant_wide
    row = page[page.index(f'id="grants-dataset-{world.payroll.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "role Payroll" in row
    assert "viewer@acme.example" in row
    assert row.count("Revoke<") == 2
    assert "globex-secrets" not in page


def test_tools_tab(world, client_for):
    services.grant_assign(action="tool.execute", obj=world.search, membership=_m(world, world.viewer))
    client = client_for(world.admin)
    page = client.get(GRANTS, {"kind": "tool"}).content.decode()
    assert "web-search" in page
    assert "<code>tool.execute</code> granted to" in page
    assert "viewer@acme.example" in page
    partial = client.get(GRANTS, {"kind": "tool"}, **HTMX).content.decode()
    assert partial.lstrip().startswith('<div id="grants-results"')
    assert "web-search" in partial


def test_bad_kind_is_400(world, client_for):
    response = client_for(world.admin).get(GRANTS, {"kind": "secrets"})
    assert response.status_code == 400
    assert "Choose datasets or tools." in response.content.decode()


def test_grant_to_role_and_member_through_the_form(world, client_for):
    client = client_for(world.admin)
    response = client.post(
        GRANTS + "add/",
        {"action": "dataset.read", "target": f"dataset:{world.payroll.pk}", "grantee": f"role:{world.role.pk}"},
    )
    assert response.status_code == 302
    assert response["Location"] == GRANTS + "?kind=dataset"
    viewer = _m(world, world.viewer)
    response = client.post(
        GRANTS + "add/",
        {"action": "tool.execute", "target": f"tool:{world.search.pk}", "grantee": f"member:{viewer.pk}"},
    )
    assert response["Location"] == GRANTS + "?kind=tool"
    assert decisions.authorize(_m(world, world.viewer), "tool.execute", world.search, log_denial=False)
    services.binding_create(role=world.role, membership=viewer)
    assert decisions.authorize(_m(world, world.viewer), "dataset.read", world.payroll, log_denial=False)
    events = _events(world, "grant.add").order_by("id")
    assert [(e.metadata["action"], e.metadata["role"], e.metadata["member"]) for e in events] == [
        ("dataset.read", "payroll", None),
        ("tool.execute", None, viewer.pk),
    ]
    assert {e.actor_id for e in events} == {str(world.admin.pk)}


def test_choices_are_narrowed_to_the_tenant(world, client_for):
    page = client_for(world.admin).get(GRANTS).content.decode()
    form = page[page.index('name="target"') : page.index("</form>", page.index('name="target"'))]
    assert f"dataset:{world.payroll.pk}" in form
    assert f"tool:{world.search.pk}" in form
    assert f"role:{world.role.pk}" in form
    assert f"dataset:{world.globex_data.pk}" not in form
    globex_role = Role.objects.for_tenant(world.globex).get(key="owner")
    assert f"role:{globex_role.pk}" not in form
    assert "owner@globex.example" not in form


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("target", "Choose a dataset or tool of this tenant."),
        ("role", "Choose a role or a member of this tenant."),
        ("member", "Choose a role or a member of this tenant."),
    ],
)
def test_another_tenants_ids_are_refused(world, client_for, field, message):
    globex_role = Role.objects.for_tenant(world.globex).get(key="owner")
    globex_member = _m(world, world.globex_owner, world.globex)
    data = {"action": "dataset.read", "target": f"dataset:{world.payroll.pk}", "grantee": f"role:{world.role.pk}"}
    if field == "target":
        data["target"] = f"dataset:{world.globex_data.pk}"
    elif field == "role":
        data["grantee"] = f"role:{globex_role.pk}"
    else:
        data["grantee"] = f"member:{globex_member.pk}"
    client = client_for(world.owner)
    response = client.post(GRANTS + "add/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    revoke = client.post(GRANTS + "revoke/", data)
    assert revoke.status_code == 400
    assert message in revoke.content.decode()
    assert not _events(world, "grant.add").exists()
    assert not _events(world, "grant.remove").exists()
    assert not AuditEvent.objects.for_tenant(world.globex).filter(action__startswith="grant.").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "tool.execute", "target": "dataset:{payroll}"}, "tool.execute applies to tools only"),
        ({"action": "billing.view", "target": "dataset:{payroll}"}, "Choose an action that can be granted"),
        ({"action": "dataset.read", "target": "dataset:abc"}, "Choose a dataset or tool of this tenant."),
        ({"action": "dataset.read", "target": "dataset:99999999999999999999"}, "Choose a dataset or tool"),
        ({"action": "dataset.read", "target": ""}, "This field is required"),
    ],
)
def test_bad_grant_input_is_a_plain_error(world, client_for, data, message):
    data = {key: value.format(payroll=world.payroll.pk) for key, value in data.items()}
    data.setdefault("grantee", f"role:{world.role.pk}")
    response = client_for(world.admin).post(GRANTS + "add/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not _events(world, "grant.add").exists()


def test_cannot_grant_what_one_may_not_do(world, client_for):
    """A role manager without dataset.write must not hand dataset.write out on objects."""
    granter = services.role_create(
        tenant=world.acme, key="granter", name="Granter", permissions=["role.manage", "dataset.read"]
    )
    user = UserFactory(email="granter@acme.example")
    membership = MembershipFactory(tenant=world.acme, user=user, role="viewer")
    services.binding_create(role=granter, membership=membership)
    response = client_for(user).post(
        GRANTS + "add/",
        {"action": "dataset.write", "target": f"dataset:{world.payroll.pk}", "grantee": f"member:{membership.pk}"},
    )
    assert response.status_code == 400
    assert "You can only grant access you hold yourself" in response.content.decode()
    assert not _events(world, "grant.add").exists()


def test_revoke_without_javascript(world, client_for):
    viewer = _m(world, world.viewer)
    services.grant_assign(action="dataset.read", obj=world.payroll, membership=viewer)
    response = client_for(world.admin).post(
        GRANTS + "revoke/",
        {
            "action": "dataset.read",
            "target": f"dataset:{world.payroll.pk}",
            "grantee": f"member:{viewer.pk}",
            "kind": "dataset",
            "page": "1",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == GRANTS + "?kind=dataset"
    assert not decisions.authorize(_m(world, world.viewer), "dataset.read", world.payroll, log_denial=False)
    event = _events(world, "grant.remove").get()
    assert (event.actor_id, event.metadata["member"]) == (str(world.admin.pk), viewer.pk)


def test_revoke_with_htmx_returns_the_table(world, client_for):
    services.grant_assign(action="tool.execute", obj=world.search, role=world.role)
    response = client_for(world.admin).post(
        GRANTS + "revoke/",
        {
            "action": "tool.execute",
            "target": f"tool:{world.search.pk}",
            "grantee": f"role:{world.role.pk}",
            "kind": "tool",
        },
        **HTMX,
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="grants-results"')
    assert "Revoked tool.execute on “web-search” from role Payroll." in body
    assert "web-search" in body
    assert "Revoke<" not in body
    assert _events(world, "grant.remove").get().metadata["role"] == "payroll"


def test_grant_of_a_disabled_member_can_be_revoked(world, client_for):
    viewer = _m(world, world.viewer)
    services.grant_assign(action="dataset.read", obj=world.payroll, membership=viewer)
    Membership.objects.filter(pk=viewer.pk).update(status="disabled")
    response = client_for(world.admin).post(
        GRANTS + "revoke/",
        {"action": "dataset.read", "target": f"dataset:{world.payroll.pk}", "grantee": f"member:{viewer.pk}"},
    )
    assert response.status_code == 302
    assert _events(world, "grant.remove").exists()


def test_grant_to_someone_who_left_is_shown_as_such(world, client_for):
    viewer = _m(world, world.viewer)
    services.grant_assign(action="dataset.read", obj=world.payroll, membership=viewer)
    viewer.delete()
    page = client_for(world.admin).get(GRANTS).content.decode()
    assert "viewer@acme.example (no longer a member)" in page


def test_grants_page_is_paginated(world, client_for):
    Dataset.objects.bulk_create(Dataset(tenant=world.acme, name=f"ds-{index:02}") for index in range(30))
    client = client_for(world.admin)
    first = client.get(GRANTS).content.decode()
    assert "Page 1 of 2" in first
    assert "ds-00" in first
    second = client.get(GRANTS, {"page": 2}, **HTMX).content.decode()
    assert "Page 2 of 2" in second
    assert f'id="grants-dataset-{world.payroll.pk}"' in second
    assert ">ds-00<" not in second


def test_query_count_does_not_grow_with_objects_or_grants(world, client_for):
    client = client_for(world.admin)

    def measure(kind: str) -> int:
        client.get(GRANTS, {"kind": kind})  # warm the permission cache for this access version
        with CaptureQueriesContext(connection) as queries:
            assert client.get(GRANTS, {"kind": kind}).status_code == 200
        return len(queries.captured_queries)

    # One grant of each kind first: an empty page of member grants skips the membership lookup.
    services.grant_assign(action="dataset.read", obj=world.docs, membership=_m(world, world.viewer))
    services.grant_assign(action="tool.execute", obj=world.search, membership=_m(world, world.viewer))
    few_datasets, few_tools = measure("dataset"), measure("tool")
    members = [MembershipFactory(tenant=world.acme, role="viewer") for _ in range(5)]
    for index in range(20):
        dataset = Dataset.objects.create(tenant=world.acme, name=f"more-{index}")
        tool = Tool.objects.create(tenant=world.acme, name=f"tool-{index}")
        services.grant_assign(action="dataset.read", obj=dataset, role=world.role)
        services.grant_assign(action="dataset.write", obj=dataset, membership=members[index % 5])
        services.grant_assign(action="tool.execute", obj=tool, membership=members[index % 5])
    assert measure("dataset") == few_datasets
    assert measure("tool") == few_tools
