"""Roles pages: list, create, edit, delete with preview and confirmation, built-ins read-only, escalation."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.access import decisions, services
from apps.access.models import Role, RoleBinding
from apps.audit.models import AuditEvent
from apps.catalog.models import Dataset
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db

ROLES = "/t/acme/access/roles/"


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    services.builtin_roles_seed(tenant=cast.globex)
    return cast


def _m(cast, user) -> Membership:
    return Membership.objects.get(tenant=cast.acme, user=user)


def _role(cast, key: str) -> Role:
    return Role.objects.for_tenant(cast.acme).get(key=key)


def _events(cast, action: str):
    return AuditEvent.objects.for_tenant(cast.acme).filter(action=action)


# --- list -----------------------------------------------------------------------------------------


def test_list_shows_builtin_and_custom_roles_with_permissions_risk_and_binding_counts(world, client_for):
    role = services.role_create(
        tenant=world.acme, key="reviewer", name="Reviewer", permissions=["audit.read", "billing.manage"]
    )
    services.binding_create(role=role, membership=_m(world, world.viewer))
    services.binding_create(role=role, idp_group="auditors")
    services.binding_create(role=role, idp_group="finance")
    page = client_for(world.admin).get(ROLES).content.decode()
    for name in ("Owner", "Admin", "Developer", "Viewer", "Reviewer"):
        assert name in page
    row = page[page.index(f'id="role-{role.pk}"') :]
    row = row[: row.index("</tr>")]
    assert "Custom" in row
    assert "1 assigned<" in row
    assert "2 groups" in row
    # Risk shows as the badge colour, the catalog description as the tooltip.
    assert 'class="badge badge-err" title="Change plans, budgets and payment settings (high risk)"' in row
    assert 'class="badge badge-warn" title="Read and export the audit log (medium risk)"' in row
    # The catalog table explains every permission.
    assert "Create and revoke API clients" in page
    assert "Globex" not in page.split("<main", 1)[1].split("</main>")[0]


def test_list_query_count_does_not_grow_with_roles_or_bindings(world, client_for):
    client = client_for(world.admin)

    def measure() -> int:
        client.get(ROLES)  # warm the permission cache for this access version
        with CaptureQueriesContext(connection) as queries:
            assert client.get(ROLES).status_code == 200
        return len(queries.captured_queries)

    services.role_create(tenant=world.acme, key="r0", name="R0", permissions=["audit.read"])
    few = measure()
    for index in range(1, 20):
        role = services.role_create(tenant=world.acme, key=f"r{index}", name=f"R{index}", permissions=["audit.read"])
        services.binding_create(role=role, membership=_m(world, world.viewer))
        services.binding_create(role=role, idp_group=f"group-{index}")
    assert measure() == few


# --- create ---------------------------------------------------------------------------------------


def test_create_role_is_saved_and_audited(world, client_for):
    response = client_for(world.admin).post(
        ROLES + "new/",
        {
            "key": "data-steward",
            "name": "Data steward",
            "description": "Curates datasets",
            "permissions": ["dataset.read", "dataset.manage"],
        },
    )
    role = _role(world, "data-steward")
    assert response.status_code == 302
    assert response["Location"] == f"{ROLES}{role.pk}/"
    assert (role.name, role.description, role.permissions, role.builtin) == (
        "Data steward",
        "Curates datasets",
        ["dataset.manage", "dataset.read"],
        False,
    )
    event = _events(world, "role.create").get()
    assert event.actor_id == str(world.admin.pk)
    assert event.metadata["after"]["permissions"] == ["dataset.manage", "dataset.read"]


def test_create_form_shows_grouped_checkboxes_with_risk(world, client_for):
    page = client_for(world.admin).get(ROLES + "new/").content.decode()
    assert 'name="permissions" value="dataset.write"' in page
    assert "Write to datasets" in page
    assert "High risk" in page
    assert "Datasets" in page
    assert 'maxlength="40"' in page  # key
    assert 'maxlength="80"' in page  # name


def test_crafted_unknown_permission_is_a_form_error_and_nothing_is_saved(world, client_for):
    response = client_for(world.owner).post(
        ROLES + "new/", {"key": "evil", "name": "Evil", "permissions": ["audit.read", "nuke.all"]}
    )
    assert response.status_code == 400
    assert "nuke.all" in response.content.decode()
    assert "is not a permission Bastion knows" in response.content.decode()
    assert not Role.objects.filter(key="evil").exists()
    assert not _events(world, "role.create").exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key": "Bad Key", "name": "X"}, "lowercase letters"),
        ({"key": "owner", "name": "Boss"}, "already exists"),
        ({"key": "k" * 41, "name": "X"}, "at most 40 characters"),
        ({"key": "ok", "name": ""}, "This field is required"),
        ({"key": "ok", "name": "n" * 81}, "at most 80 characters"),
        ({"key": "ok", "name": "viewer"}, "Another role already has this name"),
        ({"key": "ok", "name": "X", "description": "d" * 301}, "at most 300 characters"),
    ],
)
def test_invalid_role_input_is_reported_plainly(world, client_for, data, message):
    response = client_for(world.owner).post(ROLES + "new/", data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not _events(world, "role.create").exists()


def test_admin_cannot_put_a_permission_they_do_not_hold_into_a_role(world, client_for):
    """Admins lack billing.manage: a role carrying it would be a way to grant it to themselves."""
    response = client_for(world.admin).post(
        ROLES + "new/", {"key": "payer", "name": "Payer", "permissions": ["billing.manage"]}
    )
    assert response.status_code == 400
    assert "You can only give permissions you hold yourself" in response.content.decode()
    assert not Role.objects.filter(key="payer").exists()
    # The owner holds everything and may.
    client_for(world.owner).post(ROLES + "new/", {"key": "payer", "name": "Payer", "permissions": ["billing.manage"]})
    assert _role(world, "payer").permissions == ["billing.manage"]


def test_copy_starts_from_another_roles_permissions(world, client_for):
    developer = _role(world, "developer")
    page = client_for(world.admin).get(f"{ROLES}new/?copy={developer.pk}").content.decode()
    assert 'value="apiclient.manage" id="id_permissions_apiclient_manage" checked' in page
    globex_role = Role.objects.for_tenant(world.globex).get(key="owner")
    assert client_for(world.admin).get(f"{ROLES}new/?copy={globex_role.pk}").status_code == 404
    assert client_for(world.admin).get(f"{ROLES}new/?copy=abc").status_code == 404


# --- edit -----------------------------------------------------------------------------------------


def test_edit_custom_role_is_audited_with_before_and_after(world, client_for):
    role = services.role_create(tenant=world.acme, key="reviewer", name="Reviewer", permissions=["audit.read"])
    client = client_for(world.admin)
    assert client.get(f"{ROLES}{role.pk}/edit/").status_code == 200
    response = client.post(
        f"{ROLES}{role.pk}/edit/",
        {"name": "Access reviewer", "description": "Quarterly", "permissions": ["audit.read", "billing.view"]},
    )
    assert response.status_code == 302
    role.refresh_from_db()
    assert (role.name, role.permissions) == ("Access reviewer", ["audit.read", "billing.view"])
    event = _events(world, "role.update").get()
    assert event.metadata["before"] == {
        "key": "reviewer",
        "name": "Reviewer",
        "permissions": ["audit.read"],
        "clearance": "confidential",
    }
    assert event.metadata["after"]["permissions"] == ["audit.read", "billing.view"]


def test_edit_keeps_permissions_the_editor_does_not_hold(world, client_for):
    """A disabled checkbox is not submitted; the role must not silently lose billing.manage."""
    role = services.role_create(
        tenant=world.acme, key="payer", name="Payer", permissions=["billing.manage", "billing.view"]
    )
    client = client_for(world.admin)
    page = client.get(f"{ROLES}{role.pk}/edit/").content.decode()
    assert 'value="billing.manage" id="id_permissions_billing_manage" checked disabled' in page
    response = client.post(f"{ROLES}{role.pk}/edit/", {"name": "Payer", "permissions": ["audit.read"]})
    assert response.status_code == 302
    role.refresh_from_db()
    assert role.permissions == ["audit.read", "billing.manage"]


def test_edit_rename_to_a_taken_name_is_a_form_error(world, client_for):
    role = services.role_create(tenant=world.acme, key="reviewer", name="Reviewer", permissions=[])
    response = client_for(world.admin).post(f"{ROLES}{role.pk}/edit/", {"name": "ADMIN", "permissions": []})
    assert response.status_code == 400
    assert "Another role already has this name" in response.content.decode()


@pytest.mark.parametrize("action", ["edit", "delete"])
def test_builtin_roles_are_read_only(world, client_for, action):
    owner_role = _role(world, "owner")
    client = client_for(world.owner)
    assert client.get(f"{ROLES}{owner_role.pk}/{action}/").status_code == 400
    response = client.post(
        f"{ROLES}{owner_role.pk}/{action}/", {"name": "Boss", "permissions": ["tenant.view"], "confirm": "on"}
    )
    assert response.status_code == 400
    assert "Built-in roles cannot be edited or deleted" in response.content.decode()
    owner_role.refresh_from_db()
    assert owner_role.name == "Owner"
    assert len(owner_role.permissions) > 1
    assert not AuditEvent.objects.filter(action__in=["role.update", "role.delete"]).exists()
    detail = client.get(f"{ROLES}{owner_role.pk}/").content.decode()
    assert f"{ROLES}{owner_role.pk}/edit/" not in detail


# --- delete ---------------------------------------------------------------------------------------


def test_delete_unused_role(world, client_for):
    role = services.role_create(tenant=world.acme, key="temp", name="Temp", permissions=["audit.read"])
    client = client_for(world.admin)
    assert "Nobody is bound to this role." in client.get(f"{ROLES}{role.pk}/delete/").content.decode()
    response = client.post(f"{ROLES}{role.pk}/delete/")
    assert response.status_code == 302
    assert not Role.objects.filter(pk=role.pk).exists()
    assert _events(world, "role.delete").get().metadata["before"]["key"] == "temp"


def test_deleting_a_role_in_use_previews_and_needs_confirmation(world, client_for):
    role = services.role_create(tenant=world.acme, key="reviewer", name="Reviewer", permissions=["audit.read"])
    services.binding_create(role=role, membership=_m(world, world.viewer))
    services.binding_create(role=role, idp_group="auditors")
    client = client_for(world.admin)

    preview = client.get(f"{ROLES}{role.pk}/delete/").content.decode()
    assert "viewer@acme.example" in preview
    assert "group auditors" in preview
    assert "<code>audit.read</code>" in preview
    assert 'name="confirm"' in preview

    refused = client.post(f"{ROLES}{role.pk}/delete/")
    assert refused.status_code == 400
    assert "in use by 2 binding(s)" in refused.content.decode()
    assert "Nothing was deleted" in refused.content.decode()
    assert Role.objects.filter(pk=role.pk).exists()
    assert not _events(world, "role.delete").exists()

    done = client.post(f"{ROLES}{role.pk}/delete/", {"confirm": "on"})
    assert done.status_code == 302
    assert not Role.objects.filter(pk=role.pk).exists()
    assert not RoleBinding.objects.filter(role_id=role.pk).exists()
    assert _events(world, "role.delete").get().metadata["bindings_removed"] == 2
    assert not decisions.authorize(_m(world, world.viewer), "audit.read", log_denial=False)


def test_copying_a_role_does_not_pretend_to_copy_permissions_the_actor_lacks(world, client_for):
    owner_role = _role(world, "owner")
    page = client_for(world.admin).get(f"{ROLES}new/?copy={owner_role.pk}").content.decode()
    assert 'value="billing.manage" id="id_permissions_billing_manage" disabled' in page
    assert 'value="billing.view" id="id_permissions_billing_view" checked' in page


def test_delete_preview_lists_the_roles_object_grants(world, client_for):
    role = services.role_create(tenant=world.acme, key="payroll", name="Payroll", permissions=[])
    for name in ("a", "b"):
        services.grant_assign(
            action="dataset.read", obj=Dataset.objects.create(tenant=world.acme, name=name), role=role
        )
    preview = client_for(world.admin).get(f"{ROLES}{role.pk}/delete/").content.decode()
    assert "<code>dataset.read</code> on 2 objects" in preview
