"""The permission contract of every access console page, and tenant isolation on every object URL.

anonymous → sign-in, outsider and other tenant's member → 404, member without
the permission → 403 (and nothing changes), holder → 200. Another tenant's
role or binding id → 404 on every object URL, whatever the method.
"""

from __future__ import annotations

import pytest
from django.urls import URLPattern

from apps.access import services
from apps.access import urls as access_urls
from apps.access.models import Role, RoleBinding
from apps.audit.models import AuditEvent
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db

BASE = "/t/acme/access/"
# Pages a GET may open, with the permission they need.
PAGES = {
    "roles/": "role.manage",
    "roles/new/": "role.manage",
    "grants/": "role.manage",
    "explain/": "role.manage",
    "denied/": "audit.read",
}
POSTS = ["roles/new/", "grants/add/", "grants/revoke/"]


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    services.builtin_roles_seed(tenant=cast.globex)
    cast.custom = services.role_create(tenant=cast.acme, key="reviewer", name="Reviewer", permissions=["audit.read"])
    viewer = Membership.objects.get(tenant=cast.acme, user=cast.viewer)
    cast.binding = services.binding_create(role=cast.custom, membership=viewer)
    cast.globex_role = services.role_create(
        tenant=cast.globex, key="reviewer", name="Reviewer", permissions=["audit.read"]
    )
    globex_member = Membership.objects.get(tenant=cast.globex, user=cast.globex_owner)
    cast.globex_binding = services.binding_create(role=cast.globex_role, membership=globex_member)
    return cast


def _object_pages(world) -> list[str]:
    role = world.custom.pk
    return [f"roles/{role}/", f"roles/{role}/edit/", f"roles/{role}/delete/"]


def test_the_url_walk_sees_every_access_view():
    names = {pattern.name for pattern in access_urls.urlpatterns if isinstance(pattern, URLPattern)}
    expected = {"role_list", "role_create", "role_detail", "role_edit", "role_delete", "grants", "explain", "denied"}
    assert expected <= names


@pytest.mark.parametrize("page", [*PAGES, "roles/{role}/", "roles/{role}/edit/"])
def test_anonymous_is_sent_to_sign_in(client, world, page):
    response = client.get(BASE + page.format(role=world.custom.pk))
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("who", ["outsider", "globex_owner"])
def test_outsiders_get_404(world, client_for, page, who):
    assert client_for(getattr(world, who)).get(BASE + page).status_code == 404


@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("who", ["member", "viewer"])
def test_members_without_the_permission_get_403(world, client_for, page, who):
    # The viewer holds audit.read through the custom role binding: the denied page is theirs.
    if who == "viewer" and PAGES[page] == "audit.read":
        return  # the viewer holds audit.read through the Reviewer binding (tested below)
    response = client_for(getattr(world, who)).get(BASE + page)
    assert response.status_code == 403
    assert PAGES[page] in response.content.decode()


@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("who", ["owner", "admin"])
def test_owner_and_admin_may_open_every_page(world, client_for, page, who):
    assert client_for(getattr(world, who)).get(BASE + page).status_code == 200


def test_a_role_granting_audit_read_opens_the_denied_page_only(world, client_for):
    client = client_for(world.viewer)
    assert client.get(BASE + "denied/").status_code == 200
    assert client.get(BASE + "roles/").status_code == 403


def test_object_pages_follow_the_contract(world, client, client_for):
    for page in _object_pages(world):
        assert client.get(BASE + page).status_code == 302
        assert client_for(world.outsider).get(BASE + page).status_code == 404
        assert client_for(world.globex_owner).get(BASE + page).status_code == 404
        assert client_for(world.member).get(BASE + page).status_code == 403
        assert client_for(world.admin).get(BASE + page).status_code == 200


@pytest.mark.parametrize("page", POSTS)
def test_member_posts_are_refused_and_change_nothing(world, client_for, page):
    client = client_for(world.member)
    before = AuditEvent.objects.filter(action__regex=r"^(role|grant)\.").count()
    response = client.post(BASE + page, {"key": "x", "name": "X", "permissions": ["audit.read"]})
    assert response.status_code == 403
    assert AuditEvent.objects.filter(action__regex=r"^(role|grant)\.").count() == before
    assert not Role.objects.filter(key="x").exists()


def test_member_cannot_change_roles_or_bindings(world, client_for):
    client = client_for(world.member)
    role, binding = world.custom.pk, world.binding.pk
    assert client.post(f"{BASE}roles/{role}/edit/", {"name": "Hacked", "permissions": []}).status_code == 403
    assert client.post(f"{BASE}roles/{role}/delete/", {"confirm": "on"}).status_code == 403
    assert client.post(f"{BASE}roles/{role}/bindings/add/", {"idp_group": "everyone"}).status_code == 403
    assert client.post(f"{BASE}roles/{role}/bindings/{binding}/remove/").status_code == 403
    world.custom.refresh_from_db()
    assert world.custom.name == "Reviewer"
    assert RoleBinding.objects.filter(pk=binding).exists()
    assert not RoleBinding.objects.filter(idp_group="everyone").exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_other_tenants_role_and_binding_ids_are_404(world, client_for, method):
    """The acme owner may do everything in acme, yet globex's ids do not exist for them."""
    client = client_for(world.owner)
    role, binding = world.globex_role.pk, world.globex_binding.pk
    pages = [
        f"roles/{role}/",
        f"roles/{role}/edit/",
        f"roles/{role}/delete/",
        f"roles/{role}/bindings/add/",
        f"roles/{role}/bindings/{binding}/remove/",
        # An acme role with a globex binding id, too.
        f"roles/{world.custom.pk}/bindings/{binding}/remove/",
    ]
    data = {"name": "Hijacked", "permissions": ["audit.read"], "confirm": "on", "idp_group": "x"}
    for page in pages:
        response = getattr(client, method)(BASE + page, data)
        assert response.status_code == 404, page
    world.globex_role.refresh_from_db()
    assert world.globex_role.name == "Reviewer"
    assert RoleBinding.objects.filter(pk=binding).exists()
    assert not RoleBinding.objects.filter(idp_group="x").exists()


@pytest.mark.parametrize("ident", ["0", "999999999", "99999999999999999999999"])
def test_unknown_or_huge_role_ids_are_404(world, client_for, ident):
    client = client_for(world.owner)
    assert client.get(f"{BASE}roles/{ident}/").status_code == 404
    assert client.post(f"{BASE}roles/{world.custom.pk}/bindings/{ident}/remove/").status_code == 404


def test_writes_are_refused_while_the_tenant_is_suspended(world, client_for):
    world.acme.status = "suspended"
    world.acme.save()
    client = client_for(world.owner)
    assert client.get(BASE + "roles/").status_code == 200
    response = client.post(BASE + "roles/new/", {"key": "late", "name": "Late", "permissions": []})
    assert response.status_code == 403
    assert not Role.objects.filter(key="late").exists()
    page = client.get(f"{BASE}roles/{world.custom.pk}/").content.decode()
    assert "Add binding" not in page
