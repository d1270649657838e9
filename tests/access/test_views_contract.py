"""The permission contract of every access console page, and tenant isolation on every object URL.

Written through ``tests.contract``: anonymous → sign-in, outsider and other
tenant's member → 404, member without the permission → 403 (the denial logged,
nothing changes), holder → the page, suspended tenant → no write. Another
tenant's role or binding id, or an unknown one, → 404 on every object URL,
whatever the method, and nothing changes.
"""

from __future__ import annotations

import pytest
from guardian.models import GroupObjectPermission, UserObjectPermission

from apps.access import services
from apps.access.models import Role, RoleBinding
from apps.tenants.models import Membership
from tests.catalog.factories import DatasetFactory
from tests.contract import PageContract, PermissionContract, Ref, form_page

pytestmark = pytest.mark.django_db

BASE = "/t/acme/access/"
ROLE = {"role_id": Ref("custom")}
GLOBEX_ROLE = ({"role_id": Ref("globex_role")},)
ROLE_PAGE = {"kwargs": ROLE, "foreign": GLOBEX_ROLE}
GRANT = {"action": "dataset.read", "target": Ref("dataset", "dataset:{}"), "grantee": Ref("custom", "role:{}")}


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
    cast.dataset = DatasetFactory(tenant=cast.acme, name="customers")
    return cast


class TestAccessPagesContract(PermissionContract):
    """Every access page needs role.manage, but the denied-checks page (audit.read)."""

    app_namespace = "access"
    # The viewer holds audit.read through the Reviewer binding: the denied page is theirs.
    granted = {"viewer": frozenset({"audit.read"})}
    contracts = (
        PageContract("access:role_list", "role.manage"),
        # Held alone, role.manage cannot hand out audit.read: the form refuses it (400, no escalation).
        *form_page(
            "access:role_create",
            "role.manage",
            data={"key": "x", "name": "X", "permissions": ["audit.read"]},
            only_status=400,
        ),
        PageContract("access:role_detail", "role.manage", kwargs=ROLE, foreign=GLOBEX_ROLE),
        *form_page("access:role_edit", "role.manage", data={"name": "Hacked", "permissions": []}, **ROLE_PAGE),
        *form_page("access:role_delete", "role.manage", data={"confirm": "on"}, **ROLE_PAGE),
        # Binding a role hands out its permissions: role.manage alone cannot bind Reviewer (400).
        PageContract(
            "access:binding_add",
            "role.manage",
            kwargs=ROLE,
            method="post",
            data={"idp_group": "everyone"},
            ok_status=302,
            only_status=400,
            foreign=GLOBEX_ROLE,
        ),
        PageContract(
            "access:binding_remove",
            "role.manage",
            kwargs={**ROLE, "binding_id": Ref("binding")},
            method="post",
            ok_status=302,
            foreign=(
                {"role_id": Ref("globex_role"), "binding_id": Ref("globex_binding")},
                {"binding_id": Ref("globex_binding")},  # an Acme role with a Globex binding id, too
            ),
        ),
        PageContract("access:grants", "role.manage"),
        # A grant hands out dataset.read on the dataset: role.manage alone cannot (400).
        PageContract("access:grant_add", "role.manage", method="post", data=GRANT, ok_status=302, only_status=400),
        # The grant form offers only the datasets the actor may see: role.manage alone sees none (400).
        PageContract("access:grant_revoke", "role.manage", method="post", data=GRANT, ok_status=302, only_status=400),
        PageContract("access:explain", "role.manage"),
        PageContract("access:denied", "audit.read"),
    )

    @pytest.fixture
    def contract_world(self, world):
        return world

    def state(self, world):
        """The audit log, every role and binding of both tenants, and every object grant."""
        return (
            super().state(world),
            tuple(Role.objects.order_by("pk").values_list("pk", "tenant_id", "key", "name", "permissions")),
            tuple(RoleBinding.objects.order_by("pk").values_list("pk", "role_id", "membership_id", "idp_group")),
            GroupObjectPermission.objects.count(),
            UserObjectPermission.objects.count(),
        )


def test_a_role_granting_audit_read_opens_the_denied_page_only(world, client_for):
    client = client_for(world.viewer)
    assert client.get(BASE + "denied/").status_code == 200
    assert client.get(BASE + "roles/").status_code == 403


def test_a_suspended_tenant_offers_no_write_controls(world, client_for):
    world.acme.status = "suspended"
    world.acme.save()
    page = client_for(world.owner).get(f"{BASE}roles/{world.custom.pk}/").content.decode()
    assert "Add binding" not in page
