"""apps.sso.policy: who may use a password, who needs MFA, how long sessions last, and policy changes."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.sso import policy
from apps.sso.models import SignInPolicy
from apps.tenants.models import Membership
from tests.accounts.helpers import set_policy, sso_connection
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


# --- policy_for / tenant_has_working_sso ---------------------------------------------------


def test_policy_for_a_tenant_without_a_row_is_the_unsaved_default(cast):
    found = policy.policy_for(cast.acme)
    assert found.pk is None
    assert found.tenant_id == cast.acme.pk
    assert (found.sso_required, found.mfa_required_local, found.mfa_required_admin_sso) == (False, True, False)
    assert (found.session_absolute_minutes, found.session_idle_minutes) == (480, 30)
    assert not SignInPolicy.objects.exists()


def test_policy_for_reads_the_tenant_row_and_the_platform_row_apart(cast):
    set_policy(cast.acme, session_idle_minutes=10)
    set_policy(None, session_idle_minutes=15)
    assert policy.policy_for(cast.acme).session_idle_minutes == 10
    assert policy.policy_for(None).session_idle_minutes == 15
    assert policy.policy_for(cast.globex).session_idle_minutes == 30


@pytest.mark.parametrize(
    ("status", "works"), [("draft", False), ("tested", False), ("disabled", False), ("enabled", True)]
)
def test_only_an_enabled_connection_counts_as_working_sso(cast, status, works):
    sso_connection(cast.acme, status=status)
    assert policy.tenant_has_working_sso(cast.acme) is works
    assert policy.tenant_has_working_sso(cast.globex) is False
    assert policy.tenant_has_working_sso(None) is False


# --- password_sign_in_refusal --------------------------------------------------------------


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_admins_of_a_tenant_with_working_sso_are_refused_a_password(cast, role):
    connection = sso_connection(cast.acme, name="Acme Okta")
    message = policy.password_sign_in_refusal(getattr(cast, role))
    assert message is not None
    assert "Acme Corp" in message
    assert "Sign in with Acme Okta" in message
    assert f"/sso/start/{connection.public_id}/" in message


def test_a_draft_connection_does_not_lock_admins_out(cast):
    sso_connection(cast.acme, status="tested")
    assert policy.password_sign_in_refusal(cast.owner) is None


@pytest.mark.parametrize("role", ["member", "viewer"])
def test_members_keep_their_password_unless_the_tenant_requires_sso(cast, role):
    sso_connection(cast.acme)
    user = getattr(cast, role)
    assert policy.password_sign_in_refusal(user) is None
    set_policy(cast.acme, sso_required=True)
    message = policy.password_sign_in_refusal(user)
    assert message is not None
    assert "Acme Corp requires single sign-on for every member" in message
    assert "Sign in with Okta: /sso/start/" in message


def test_sso_required_without_working_sso_refuses_nobody(cast):
    set_policy(cast.acme, sso_required=True)
    sso_connection(cast.acme, status="draft")
    assert policy.password_sign_in_refusal(cast.member) is None
    assert policy.password_sign_in_refusal(cast.owner) is None


def test_staff_are_refused_once_platform_sso_is_enabled(cast):
    assert policy.password_sign_in_refusal(cast.staff) is None
    sso_connection(cast.acme)  # a tenant's connection is not the platform's
    assert policy.password_sign_in_refusal(cast.staff) is None
    platform = sso_connection(None, name="Staff Entra", status="draft")
    assert policy.password_sign_in_refusal(cast.staff) is None
    platform.status = "enabled"
    platform.save()
    refusal = policy.password_sign_in_check(cast.staff)
    assert refusal is not None
    assert (refusal.rule, refusal.tenant) == ("staff", None)
    assert refusal.message.endswith(f"Sign in with Staff Entra: /sso/start/{platform.public_id}/")
    assert policy.password_sign_in_refusal(cast.member) is None  # platform SSO is for staff only


def test_an_admin_elsewhere_is_refused_even_where_they_are_only_a_member(cast):
    """Attacker side: a second tenant where the person is a plain member does not open the password door."""
    MembershipFactory(tenant=cast.globex, user=cast.member, role=Membership.Role.ADMIN)
    sso_connection(cast.globex, name="Globex Okta")
    refusal = policy.password_sign_in_check(cast.member)
    assert refusal is not None
    assert (refusal.rule, refusal.tenant) == ("admin", cast.globex)
    assert "Globex" in refusal.message


def test_disabled_or_invited_memberships_do_not_count(cast):
    sso_connection(cast.acme)
    Membership.objects.filter(tenant=cast.acme, user=cast.admin).update(status="disabled")
    assert policy.password_sign_in_refusal(cast.admin) is None


def test_the_refusal_check_costs_a_fixed_number_of_queries(cast, django_assert_max_num_queries):
    for tenant in (cast.acme, cast.globex):
        sso_connection(tenant, name=f"IdP {tenant.slug}")
        set_policy(tenant, sso_required=True)
    for index in range(5):
        extra = MembershipFactory(user=cast.member, role="member").tenant
        sso_connection(extra, name=f"IdP {index}")
    # memberships, enabled connections, policies, and the admin role bindings (apps.access)
    with django_assert_max_num_queries(4):
        assert policy.password_sign_in_check(cast.member) is not None


# --- mfa_required_for ----------------------------------------------------------------------


def test_mfa_is_required_for_staff_owners_and_admins_whatever_the_policy(cast):
    set_policy(cast.acme, mfa_required_local=False)
    assert policy.mfa_required_for(cast.staff)
    assert policy.mfa_required_for(cast.owner)
    assert policy.mfa_required_for(cast.admin)
    assert not policy.mfa_required_for(cast.member)


def test_members_need_mfa_when_any_of_their_tenants_says_so(cast):
    assert policy.mfa_required_for(cast.member)  # the default policy requires it
    set_policy(cast.acme, mfa_required_local=False)
    assert not policy.mfa_required_for(cast.member)
    MembershipFactory(tenant=cast.globex, user=cast.member, role="viewer")
    assert policy.mfa_required_for(cast.member)  # Globex keeps the default


def test_someone_without_a_tenant_needs_no_mfa(cast):
    assert not policy.mfa_required_for(cast.outsider)


# --- session_limits_for --------------------------------------------------------------------


def test_session_limits_default_to_eight_hours_and_thirty_minutes(cast):
    assert policy.session_limits_for(cast.outsider) == (480, 30)
    assert policy.session_limits_for(cast.member) == (480, 30)


def test_session_limits_take_the_strictest_tenant(cast):
    MembershipFactory(tenant=cast.globex, user=cast.member, role="viewer")
    set_policy(cast.acme, session_absolute_minutes=120, session_idle_minutes=45)
    set_policy(cast.globex, session_absolute_minutes=600, session_idle_minutes=10)
    assert policy.session_limits_for(cast.member) == (120, 10)
    assert policy.session_limits_for(cast.globex_owner) == (600, 10)


def test_staff_also_fall_under_the_platform_policy(cast):
    set_policy(None, session_absolute_minutes=60, session_idle_minutes=15)
    assert policy.session_limits_for(cast.staff) == (60, 15)
    assert policy.session_limits_for(cast.member) == (480, 30)


# --- sso_mfa_required_for ------------------------------------------------------------------


def test_admin_sso_mfa_applies_to_admins_only(cast):
    assert not policy.sso_mfa_required_for(cast.admin, tenant=cast.acme)
    set_policy(cast.acme, mfa_required_admin_sso=True)
    assert policy.sso_mfa_required_for(cast.admin, tenant=cast.acme)
    assert policy.sso_mfa_required_for(cast.owner, tenant=cast.acme)
    assert not policy.sso_mfa_required_for(cast.member, tenant=cast.acme)
    assert not policy.sso_mfa_required_for(cast.globex_owner, tenant=cast.acme)
    set_policy(None, mfa_required_admin_sso=True)
    assert policy.sso_mfa_required_for(cast.staff, tenant=None)


# --- policy_update -------------------------------------------------------------------------


def test_policy_update_stores_and_audits_before_and_after(cast):
    updated = policy.policy_update(tenant=cast.acme, actor=cast.owner, sso_required=True, session_idle_minutes=15)
    assert updated.pk is not None
    assert (updated.sso_required, updated.session_idle_minutes) == (True, 15)
    event = AuditEvent.objects.get(action="sso.policy_update")
    assert event.tenant_id == cast.acme.pk
    assert event.actor_id == str(cast.owner.pk)
    assert event.metadata["before"]["sso_required"] is False
    assert event.metadata["after"]["sso_required"] is True
    assert event.metadata["changed"] == ["session_idle_minutes", "sso_required"]


def test_policy_update_without_a_change_records_nothing(cast):
    policy.policy_update(tenant=cast.acme, actor=cast.owner, session_idle_minutes=30)
    assert not AuditEvent.objects.filter(action="sso.policy_update").exists()


def test_platform_policy_update_goes_to_the_platform_chain(cast):
    policy.policy_update(tenant=None, actor=cast.staff, mfa_required_admin_sso=True)
    event = AuditEvent.objects.get(action="sso.policy_update")
    assert event.tenant_id is None
    assert SignInPolicy.objects.get(tenant=None).mfa_required_admin_sso


@pytest.mark.parametrize(
    ("changes", "text"),
    [
        ({"session_absolute_minutes": 4}, "between 5 minutes"),
        ({"session_absolute_minutes": 8 * 24 * 60}, "7 days"),
        ({"session_idle_minutes": 0}, "idle timeout"),
        ({"session_absolute_minutes": 30, "session_idle_minutes": 60}, "cannot be longer"),
        ({"password_rule": "weak"}, "Unknown policy setting"),
    ],
)
def test_policy_update_refuses_bad_values_and_writes_nothing(cast, changes, text):
    with pytest.raises(policy.PolicyError, match=text):
        policy.policy_update(tenant=cast.acme, actor=cast.owner, **changes)
    assert not AuditEvent.objects.filter(action="sso.policy_update").exists()
    assert policy.policy_for(cast.acme).session_absolute_minutes == 480
