"""Issue #7 item 6: "admin" for the sign-in policy comes from any source, not the role name.

Attacker's view: a person whose membership role is plain Member gets admin
rights through a role binding (to them, or to an IdP group they are in). They
try to keep signing in with a password and without MFA, as a Member may. The
sign-in policy asks ``apps.access`` and treats them as the admin they are.
"""

from __future__ import annotations

import pytest

from apps.access import services
from apps.access.permissions import ADMINISTRATIVE_PERMISSIONS, PERMISSIONS
from apps.sso import policy
from apps.tenants.models import Membership
from tests.accounts.helpers import set_policy, sso_connection
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    cast.member_m = Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=cast.member)
    cast.sso_admin = services.role_create(
        tenant=cast.acme, key="idp-admins", name="IdP admins", permissions=["tenant.view", "sso.manage"]
    )
    return cast


def test_the_catalog_marks_the_administrative_permissions() -> None:
    assert {
        "member.manage",
        "role.manage",
        "sso.manage",
        "billing.manage",
        "key.manage",
        "apiclient.manage",
        "breakglass.approve",
    } == ADMINISTRATIVE_PERMISSIONS
    assert all(PERMISSIONS[name].administrative for name in ADMINISTRATIVE_PERMISSIONS)
    assert not PERMISSIONS["dataset.read"].administrative


def test_a_plain_member_is_no_admin(world) -> None:
    set_policy(world.acme, mfa_required_local=False)
    sso_connection(world.acme)
    assert not policy.is_admin(world.member_m)
    assert policy.password_sign_in_check(world.member) is None
    assert not policy.mfa_required_for(world.member)


def test_admin_rights_from_a_direct_binding_count(world) -> None:
    set_policy(world.acme, mfa_required_local=False, mfa_required_admin_sso=True)
    services.binding_create(role=world.sso_admin, membership=world.member_m)
    assert policy.is_admin(world.member_m)
    assert policy.mfa_required_for(world.member)
    assert policy.sso_mfa_required_for(world.member, tenant=world.acme)
    sso_connection(world.acme)
    refusal = policy.password_sign_in_check(world.member)
    assert refusal is not None
    assert refusal.rule == "admin"


def test_admin_rights_from_an_idp_group_count(world) -> None:
    set_policy(world.acme, mfa_required_local=False, mfa_required_admin_sso=True)
    services.binding_create(role=world.sso_admin, idp_group="it-admins")
    assert policy.password_sign_in_check(world.member) is None  # not in the group yet
    Membership.objects.filter(pk=world.member_m.pk).update(idp_groups=["staff", "it-admins"])
    sso_connection(world.acme)
    refusal = policy.password_sign_in_check(world.member)
    assert refusal is not None
    assert refusal.rule == "admin"
    assert policy.mfa_required_for(world.member)
    assert policy.sso_mfa_required_for(world.member, tenant=world.acme)
    # The same group name asserted for another tenant gives nothing there.
    globex_m = MembershipFactory(tenant=world.globex, user=world.member, role="member", idp_groups=["it-admins"])
    assert not policy.is_admin(globex_m)


def test_the_tenant_sso_boundary_applies_to_bound_admins(world) -> None:
    services.binding_create(role=world.sso_admin, membership=world.member_m)
    connection = sso_connection(world.acme)
    member_m = Membership.objects.select_related("tenant").get(pk=world.member_m.pk)
    password_session = {"method": "password"}
    assert policy.tenant_session_refusal(membership=member_m, sign_in=password_session, sso=None) == connection


def test_object_grants_and_disabled_memberships_do_not_make_an_admin(world) -> None:
    services.binding_create(role=world.sso_admin, membership=world.member_m)
    Membership.objects.filter(pk=world.member_m.pk).update(status="disabled")
    assert not policy.is_admin(Membership.objects.get(pk=world.member_m.pk))
