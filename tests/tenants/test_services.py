"""Membership and tenant rules in apps.tenants.services."""

from __future__ import annotations

from unittest import mock

import pytest
from django.core import mail

from apps.audit.models import AuditEvent
from apps.tenants import services
from apps.tenants.models import Membership, Tenant
from apps.tenants.services import TenantError
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def _membership(cast, user) -> Membership:
    return Membership.objects.get(tenant=cast.acme, user=user)


def _events(tenant, action):
    return list(AuditEvent.objects.for_tenant(tenant).filter(action=action).order_by("id"))


# --- role changes --------------------------------------------------------------------------


def test_admin_changes_member_role_and_it_is_audited_with_before_and_after(cast):
    target = _membership(cast, cast.member)
    changed = services.membership_change_role(membership=target, role="viewer", actor=cast.admin)
    assert changed.role == "viewer"
    assert _membership(cast, cast.member).role == "viewer"
    (event,) = _events(cast.acme, "member.role_change")
    assert event.actor_id == str(cast.admin.pk)
    assert event.target_id == str(target.pk)
    assert event.metadata["before"] == {"role": "member", "status": "active"}
    assert event.metadata["after"] == {"role": "viewer", "status": "active"}
    assert event.metadata["email"] == cast.member.email


def test_same_role_is_a_no_op_without_audit(cast):
    services.membership_change_role(membership=_membership(cast, cast.member), role="member", actor=cast.admin)
    assert _events(cast.acme, "member.role_change") == []


def test_unknown_role_is_refused(cast):
    with pytest.raises(TenantError):
        services.membership_change_role(membership=_membership(cast, cast.member), role="god", actor=cast.owner)


def test_member_cannot_change_own_role(cast):
    with pytest.raises(TenantError, match="your own"):
        services.membership_change_role(membership=_membership(cast, cast.admin), role="viewer", actor=cast.admin)
    assert _membership(cast, cast.admin).role == "admin"


def test_admin_cannot_grant_owner(cast):
    with pytest.raises(TenantError, match="Only an owner"):
        services.membership_change_role(membership=_membership(cast, cast.member), role="owner", actor=cast.admin)
    assert _membership(cast, cast.member).role == "member"


def test_admin_cannot_demote_an_owner_even_with_several_owners(cast):
    second = MembershipFactory(tenant=cast.acme, role="owner")
    with pytest.raises(TenantError, match="Only an owner"):
        services.membership_change_role(membership=second, role="member", actor=cast.admin)
    second.refresh_from_db()
    assert second.role == "owner"


def test_owner_can_grant_and_revoke_owner(cast):
    target = _membership(cast, cast.admin)
    services.membership_change_role(membership=target, role="owner", actor=cast.owner)
    assert _membership(cast, cast.admin).role == "owner"
    services.membership_change_role(membership=target, role="admin", actor=cast.owner)
    assert _membership(cast, cast.admin).role == "admin"


def test_last_active_owner_cannot_demote_themselves(cast):
    with pytest.raises(TenantError, match="last active owner"):
        services.membership_change_role(membership=_membership(cast, cast.owner), role="admin", actor=cast.owner)
    assert _membership(cast, cast.owner).role == "owner"


CHANGES = {
    "remove": lambda target, by: services.membership_remove(membership=target, actor=by),
    "disable": lambda target, by: services.membership_set_disabled(membership=target, disabled=True, actor=by),
    "demote": lambda target, by: services.membership_change_role(membership=target, role="member", actor=by),
}


@pytest.mark.parametrize("action", sorted(CHANGES))
def test_last_active_owner_is_protected_whoever_asks(cast, action):
    """Even an actor outside the owner-only rule (platform staff) cannot strip the last owner."""
    target = _membership(cast, cast.owner)
    with pytest.raises(TenantError, match="last active owner"):
        CHANGES[action](target, cast.staff)
    target.refresh_from_db()
    assert (target.role, target.status) == ("owner", "active")


def test_an_invited_owner_does_not_count_as_active_owner(cast):
    MembershipFactory(tenant=cast.acme, role="owner", status="invited")
    with pytest.raises(TenantError, match="last active owner"):
        services.membership_remove(membership=_membership(cast, cast.owner), actor=cast.staff)


def test_one_of_two_owners_can_be_demoted_by_the_other(cast):
    second = MembershipFactory(tenant=cast.acme, role="owner")
    services.membership_change_role(membership=second, role="admin", actor=cast.owner)
    second.refresh_from_db()
    assert second.role == "admin"


def test_membership_of_another_tenant_is_refused(cast):
    globex_membership = Membership.objects.get(tenant=cast.globex, user=cast.globex_owner)
    # Even if a caller passes the wrong row, the lock re-reads it inside its own tenant.
    globex_membership.tenant_id = cast.acme.pk
    with pytest.raises(TenantError, match="no longer exists"):
        services.membership_change_role(membership=globex_membership, role="viewer", actor=cast.owner)
    assert Membership.objects.get(tenant=cast.globex, user=cast.globex_owner).role == "owner"


def test_role_change_rolls_back_if_audit_fails(cast):
    target = _membership(cast, cast.member)
    with (
        mock.patch("apps.tenants.services.record", side_effect=RuntimeError("audit down")),
        pytest.raises(RuntimeError),
    ):
        services.membership_change_role(membership=target, role="viewer", actor=cast.admin)
    assert _membership(cast, cast.member).role == "member"


# --- disable, enable, remove ---------------------------------------------------------------


def test_disable_and_enable_member(cast):
    target = _membership(cast, cast.member)
    services.membership_set_disabled(membership=target, disabled=True, actor=cast.admin)
    assert _membership(cast, cast.member).status == "disabled"
    services.membership_set_disabled(membership=target, disabled=False, actor=cast.admin)
    assert _membership(cast, cast.member).status == "active"
    (disable,) = _events(cast.acme, "member.disable")
    assert disable.metadata["before"]["status"] == "active"
    assert disable.metadata["after"]["status"] == "disabled"
    assert len(_events(cast.acme, "member.enable")) == 1


def test_enabling_someone_who_never_joined_restores_the_invitation(cast):
    invited = MembershipFactory(tenant=cast.acme, status="disabled", joined_at=None)
    services.membership_set_disabled(membership=invited, disabled=False, actor=cast.admin)
    invited.refresh_from_db()
    assert invited.status == "invited"


def test_remove_member_is_audited(cast):
    target = _membership(cast, cast.viewer)
    services.membership_remove(membership=target, actor=cast.admin)
    assert not Membership.objects.filter(pk=target.pk).exists()
    (event,) = _events(cast.acme, "member.remove")
    assert event.metadata["before"] == {"role": "viewer", "status": "active"}
    assert event.metadata["after"] is None


def test_cannot_remove_yourself(cast):
    with pytest.raises(TenantError, match="your own"):
        services.membership_remove(membership=_membership(cast, cast.admin), actor=cast.admin)


def test_admin_cannot_remove_an_owner(cast):
    second = MembershipFactory(tenant=cast.acme, role="owner")
    with pytest.raises(TenantError, match="Only an owner"):
        services.membership_remove(membership=second, actor=cast.admin)
    assert Membership.objects.filter(pk=second.pk).exists()


# --- invitations ---------------------------------------------------------------------------


def test_invite_sends_mail_after_commit(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        membership = services.membership_invite(
            tenant=cast.acme, email=" New@Example.com ", role="member", actor=cast.admin
        )
    assert membership.status == "invited"
    assert membership.user.email == "new@example.com"
    assert not membership.user.has_usable_password()
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["new@example.com"]
    assert "/invitations/" in mail.outbox[0].body
    (event,) = _events(cast.acme, "member.invite")
    assert event.metadata["role"] == "member"


def test_invitation_mail_waits_for_commit(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.membership_invite(tenant=cast.acme, email="x@example.com", actor=cast.admin)
    assert len(callbacks) == 1  # queued for commit only
    assert mail.outbox == []


def test_invite_active_member_is_refused(cast):
    with pytest.raises(TenantError, match="already a member"):
        services.membership_invite(tenant=cast.acme, email=cast.member.email, actor=cast.admin)


def test_admin_cannot_invite_an_owner(cast):
    with pytest.raises(TenantError, match="Only an owner"):
        services.membership_invite(tenant=cast.acme, email="boss@example.com", role="owner", actor=cast.admin)
    assert not Membership.objects.filter(tenant=cast.acme, user__email="boss@example.com").exists()


def test_owner_can_invite_an_owner(cast):
    membership = services.membership_invite(tenant=cast.acme, email="boss@example.com", role="owner", actor=cast.owner)
    assert membership.role == "owner"


def test_resend_only_for_open_invitations(cast, django_capture_on_commit_callbacks):
    invited = services.membership_invite(tenant=cast.acme, email="later@example.com", actor=cast.admin)
    with django_capture_on_commit_callbacks(execute=True):
        services.membership_resend(membership=invited, actor=cast.admin)
    assert len(mail.outbox) == 1
    assert len(_events(cast.acme, "member.invite_resend")) == 1
    with pytest.raises(TenantError, match="no open invitation"):
        services.membership_resend(membership=_membership(cast, cast.member), actor=cast.admin)


def test_email_task_skips_a_withdrawn_invitation(cast):
    from apps.tenants.tasks import send_invitation_email

    invited = services.membership_invite(tenant=cast.acme, email="gone@example.com", actor=cast.admin)
    services.membership_remove(membership=invited, actor=cast.admin)
    assert send_invitation_email.delay(invited.pk).get() is False
    assert mail.outbox == []


def test_email_task_retries_smtp_errors():
    from smtplib import SMTPException

    from apps.tenants.tasks import send_invitation_email

    assert SMTPException in send_invitation_email.autoretry_for
    assert send_invitation_email.acks_late is True


# --- suspended tenant ------------------------------------------------------------------------


def test_suspended_tenant_refuses_every_membership_change(cast):
    services.tenant_set_status(tenant=cast.acme, suspended=True, reason="unpaid", actor=cast.staff)
    target = _membership(cast, cast.member)
    calls = [
        lambda: services.membership_invite(tenant=cast.acme, email="s@example.com", actor=cast.owner),
        lambda: services.membership_change_role(membership=target, role="viewer", actor=cast.owner),
        lambda: services.membership_set_disabled(membership=target, disabled=True, actor=cast.owner),
        lambda: services.membership_remove(membership=target, actor=cast.owner),
    ]
    for call in calls:
        with pytest.raises(TenantError, match="suspended"):
            call()
    target.refresh_from_db()
    assert (target.role, target.status) == ("member", "active")
    assert not Membership.objects.filter(user__email="s@example.com").exists()


# --- tenants -----------------------------------------------------------------------------------


def test_tenant_create_invites_owner(db, django_capture_on_commit_callbacks):
    staff = UserFactory(is_staff=True)
    with django_capture_on_commit_callbacks(execute=True):
        tenant = services.tenant_create(
            slug="Initech", name=" Initech ", owner_email="boss@initech.example", actor=staff
        )
    assert (tenant.slug, tenant.name) == ("initech", "Initech")
    owner = Membership.objects.for_tenant(tenant).get()
    assert (owner.role, owner.status, owner.user.email) == ("owner", "invited", "boss@initech.example")
    assert mail.outbox[0].to == ["boss@initech.example"]
    assert AuditEvent.objects.filter(action="tenant.create", tenant=None).count() == 1
    assert AuditEvent.objects.for_tenant(tenant).filter(action="tenant.create").count() == 1


@pytest.mark.parametrize("slug", ["acme", "platform", "new"])
def test_tenant_create_refuses_taken_and_reserved_slugs(cast, slug):
    with pytest.raises(TenantError):
        services.tenant_create(slug=slug, name="X", owner_email="x@example.com", actor=cast.staff)
    assert Tenant.objects.filter(name="X").count() == 0


def test_tenant_suspend_needs_reason_and_changes_state_once(cast):
    with pytest.raises(TenantError, match="reason"):
        services.tenant_set_status(tenant=cast.acme, suspended=True, reason="  ", actor=cast.staff)
    services.tenant_set_status(tenant=cast.acme, suspended=True, reason="unpaid", actor=cast.staff)
    with pytest.raises(TenantError, match="already suspended"):
        services.tenant_set_status(tenant=cast.acme, suspended=True, reason="again", actor=cast.staff)
    services.tenant_set_status(tenant=cast.acme, suspended=False, actor=cast.staff)
    cast.acme.refresh_from_db()
    assert not cast.acme.is_suspended
    assert cast.acme.suspended_reason == ""
