"""Role detail page: bindings to members and IdP groups, added and removed with and without htmx."""

from __future__ import annotations

import pytest

from apps.access import decisions, services
from apps.access.models import Role, RoleBinding
from apps.audit.models import AuditEvent
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    services.builtin_roles_seed(tenant=cast.globex)
    cast.role = services.role_create(tenant=cast.acme, key="reviewer", name="Reviewer", permissions=["audit.read"])
    return cast


def _m(cast, user, tenant=None) -> Membership:
    return Membership.objects.get(tenant=tenant or cast.acme, user=user)


def _url(role: Role, action: str = "") -> str:
    return f"/t/acme/access/roles/{role.pk}/{action}"


def test_detail_lists_permissions_and_bindings(world, client_for):
    services.binding_create(role=world.role, membership=_m(world, world.viewer))
    services.binding_create(role=world.role, idp_group="auditors")
    page = client_for(world.admin).get(_url(world.role)).content.decode()
    assert "Read and export the audit log" in page
    assert "viewer@acme.example" in page
    assert "<code>auditors</code>" in page
    assert "Add binding" in page


def test_member_choices_hold_only_this_tenants_members(world, client_for):
    page = client_for(world.admin).get(_url(world.role)).content.decode()
    form = page[page.index('name="member"') : page.index("</select>", page.index('name="member"'))]
    assert "viewer@acme.example" in form
    assert "owner@globex.example" not in form
    assert f'value="{_m(world, world.globex_owner, world.globex).pk}"' not in form


def test_bind_member_without_javascript_redirects_and_audits(world, client_for):
    viewer = _m(world, world.viewer)
    response = client_for(world.admin).post(_url(world.role, "bindings/add/"), {"member": viewer.pk})
    assert response.status_code == 302
    assert response["Location"] == _url(world.role)
    assert RoleBinding.objects.filter(role=world.role, membership=viewer).exists()
    event = AuditEvent.objects.for_tenant(world.acme).get(action="role.bind")
    assert (event.actor_id, event.metadata["member"]) == (str(world.admin.pk), viewer.pk)
    assert decisions.authorize(_m(world, world.viewer), "audit.read", log_denial=False)


def test_bind_group_with_htmx_returns_the_binding_list(world, client_for):
    response = client_for(world.admin).post(_url(world.role, "bindings/add/"), {"idp_group": " sso-auditors "}, **HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section class="card" id="bindings"')
    assert "<html" not in body
    assert "<code>sso-auditors</code>" in body
    assert "now holds Reviewer" in body
    assert RoleBinding.objects.get(role=world.role).idp_group == "sso-auditors"
    assert AuditEvent.objects.for_tenant(world.acme).get(action="role.bind").metadata["group"] == "sso-auditors"


def test_other_tenants_membership_is_refused(world, client_for):
    globex_member = _m(world, world.globex_owner, world.globex)
    response = client_for(world.owner).post(_url(world.role, "bindings/add/"), {"member": globex_member.pk})
    assert response.status_code == 400
    assert "Choose a member of this tenant." in response.content.decode()
    assert not RoleBinding.objects.filter(role=world.role).exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Choose a member or type a group name"),
        ({"member": "{viewer}", "idp_group": "both"}, "Choose a member or type a group name"),
        ({"idp_group": "g" * 201}, "at most 200 characters"),
        ({"idp_group": "line\nbreak"}, "printable characters"),
        ({"member": "abc"}, "Choose a member of this tenant."),
        ({"member": "99999999999999999999999"}, "Choose a member of this tenant."),
    ],
)
def test_bad_binding_input_is_a_plain_error(world, client_for, data, message):
    data = {key: value.format(viewer=_m(world, world.viewer).pk) for key, value in data.items()}
    client = client_for(world.admin)
    response = client.post(_url(world.role, "bindings/add/"), data)
    assert response.status_code == 400
    assert message in response.content.decode()
    htmx = client.post(_url(world.role, "bindings/add/"), data, **HTMX)
    assert message in htmx.content.decode()
    assert "<html" not in htmx.content.decode()
    assert not RoleBinding.objects.filter(role=world.role).exists()


def test_a_group_name_of_200_characters_is_accepted(world, client_for):
    client_for(world.admin).post(_url(world.role, "bindings/add/"), {"idp_group": "g" * 200})
    assert RoleBinding.objects.get(role=world.role).idp_group == "g" * 200


def test_binding_twice_is_reported(world, client_for):
    services.binding_create(role=world.role, idp_group="auditors")
    response = client_for(world.admin).post(_url(world.role, "bindings/add/"), {"idp_group": "auditors"})
    assert response.status_code == 400
    assert "already has this role" in response.content.decode()


def test_admin_cannot_hand_out_a_role_with_permissions_they_lack(world, client_for):
    """Binding the built-in Owner role to oneself would give an admin billing.manage."""
    owner_role = Role.objects.for_tenant(world.acme).get(key="owner")
    client = client_for(world.admin)
    assert "which you do not hold yourself" in client.get(_url(owner_role)).content.decode()
    response = client.post(_url(owner_role, "bindings/add/"), {"member": _m(world, world.admin).pk})
    assert response.status_code == 400
    assert "billing.manage" in response.content.decode()
    assert not RoleBinding.objects.filter(role=owner_role).exists()


def test_builtin_roles_can_be_mapped_to_idp_groups(world, client_for):
    developer = Role.objects.for_tenant(world.acme).get(key="developer")
    client_for(world.owner).post(_url(developer, "bindings/add/"), {"idp_group": "engineering"})
    viewer = _m(world, world.viewer)
    viewer.idp_groups = ["engineering"]
    decision = decisions.authorize(viewer, "apiclient.manage", log_denial=False)
    assert decision.allowed
    assert decision.reasons == ("role Developer (group engineering) grants apiclient.manage tenant-wide",)


def test_remove_binding_plain_and_htmx(world, client_for):
    member_binding = services.binding_create(role=world.role, membership=_m(world, world.viewer))
    group_binding = services.binding_create(role=world.role, idp_group="auditors")
    client = client_for(world.admin)
    assert client.get(_url(world.role, f"bindings/{member_binding.pk}/remove/")).status_code == 405

    response = client.post(_url(world.role, f"bindings/{member_binding.pk}/remove/"))
    assert response.status_code == 302
    assert not RoleBinding.objects.filter(pk=member_binding.pk).exists()
    assert not decisions.authorize(_m(world, world.viewer), "audit.read", log_denial=False)

    response = client.post(_url(world.role, f"bindings/{group_binding.pk}/remove/"), **HTMX)
    assert response.status_code == 200
    assert "No bindings." in response.content.decode()
    assert "The group “auditors” no longer holds Reviewer" in response.content.decode()
    events = AuditEvent.objects.for_tenant(world.acme).filter(action="role.unbind")
    assert events.count() == 2
    assert {event.actor_id for event in events} == {str(world.admin.pk)}


def test_a_binding_of_another_role_is_404(world, client_for):
    other = services.role_create(tenant=world.acme, key="other", name="Other", permissions=[])
    binding = services.binding_create(role=other, idp_group="auditors")
    response = client_for(world.admin).post(_url(world.role, f"bindings/{binding.pk}/remove/"))
    assert response.status_code == 404
    assert RoleBinding.objects.filter(pk=binding.pk).exists()
