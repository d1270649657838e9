"""Tenant and membership writes. Each is atomic, audited and returns the object.

Membership changes serialise per tenant: every one of them first locks the
tenant row, so two owners demoting each other at the same moment cannot leave
a tenant without an owner. Rules the caller may not break raise ``TenantError``
with a message meant for the person who asked; nothing is written then.

A membership's role is access, which this floor cannot ask about: faces invite,
change, re-enable and remove people through ``apps.access.members``, which adds
the no-escalation rule and the removal of the person's object grants around
these writes (tests/access/test_member_entry_points.py holds everyone to it).
"""

from __future__ import annotations

import functools
from functools import partial
from typing import Any

from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts import services as account_services
from apps.accounts.models import User
from apps.accounts.services import sign_out_everywhere
from apps.audit.services import Actor, record
from apps.tenants import events
from apps.tenants.invitations import (
    INVITATION_MAX_AGE,
    INVITATION_SALT,
    INVITATION_TOKEN_MAX_LENGTH,
)
from apps.tenants.models import RESERVED_SLUGS, Membership, MembershipRemoval, Tenant

OWNER_ONLY = "Only an owner can grant or revoke the owner role, or change an owner's membership."

Role = Membership.Role
Status = Membership.Status


class TenantError(ValueError):
    """A tenant or membership change that the rules refuse; the message is for the user."""


def _audit_actor(actor: User | None) -> Actor:
    return Actor.for_user(actor) if actor is not None else Actor.system()


# --- invitations ---------------------------------------------------------------------------


def invitation_membership(token: str) -> Membership:
    """The invited membership a token names. Raises TenantError if expired, forged or used."""
    if len(token) > INVITATION_TOKEN_MAX_LENGTH:
        raise TenantError("This invitation link is not valid.")
    try:
        data = signing.loads(token, salt=INVITATION_SALT, max_age=INVITATION_MAX_AGE)
    except signing.SignatureExpired:
        raise TenantError("This invitation has expired. Ask for a new one.") from None
    except signing.BadSignature:
        raise TenantError("This invitation link is not valid.") from None
    if not isinstance(data, dict) or not isinstance(data.get("m"), int) or not isinstance(data.get("e"), str):
        raise TenantError("This invitation link is not valid.")
    membership = Membership.objects.select_related("tenant", "user").filter(pk=data["m"], user__email=data["e"]).first()
    if membership is None or membership.status != Status.INVITED:
        raise TenantError("This invitation has already been used or was withdrawn.")
    return membership


def _enqueue_invitation_email(membership_id: int) -> None:
    # Imported here: the task module is a face on top of this one.
    from apps.tenants.tasks import send_invitation_email

    send_invitation_email.delay(membership_id)


def _after_commit_send_invitation(membership_id: int) -> None:
    # robust: a broker outage must not turn a committed invitation into a 500;
    # Django logs the failure and the inviter can resend from the members page.
    transaction.on_commit(functools.partial(_enqueue_invitation_email, membership_id), robust=True)


def _user_for_email(email: str) -> User:
    email = email.strip().lower()
    user = User.objects.filter(email__iexact=email).first()
    return user or User.objects.create_user(email=email)


# --- membership rules ----------------------------------------------------------------------


def _lock_tenant(tenant: Tenant | int) -> Tenant:
    """Lock the tenant row (serialises membership changes) and refuse if it is suspended."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    locked = Tenant.objects.select_for_update().get(pk=tenant_id)
    if locked.is_suspended:
        raise TenantError(f"{locked.name} is suspended; nothing can be changed until it is reactivated.")
    return locked


def _lock_membership(tenant: Tenant, membership: Membership) -> Membership:
    locked = (
        Membership.objects.for_tenant(tenant)
        .select_for_update(of=("self",))
        .select_related("user")
        .filter(pk=membership.pk)
        .first()
    )
    if locked is None:
        raise TenantError("This membership no longer exists.")
    return locked


def _actor_role(tenant: Tenant, actor: User | None) -> str | None:
    """The acting user's role if they are an active member of ``tenant``."""
    if actor is None:
        return None
    return (
        Membership.objects.for_tenant(tenant)
        .filter(user=actor, status=Status.ACTIVE)
        .values_list("role", flat=True)
        .first()
    )


def _active_owner_count(tenant: Tenant) -> int:
    return Membership.objects.for_tenant(tenant).filter(role=Role.OWNER, status=Status.ACTIVE).count()


def _check_change_allowed(
    *, tenant: Tenant, target: Membership, actor: User, new_role: str | None = None, verb: str
) -> None:
    """The rules every change of someone else's membership obeys.

    The last active owner keeps their role and status (checked first, so a
    sole owner trying to step down learns why); a member cannot change their
    own membership; only an owner can touch an owner's membership or grant
    the owner role.
    """
    loses_ownership = new_role is None or new_role != Role.OWNER
    is_active_owner = target.role == Role.OWNER and target.status == Status.ACTIVE
    if is_active_owner and loses_ownership and _active_owner_count(tenant) <= 1:
        raise TenantError(f"{target.user.email} is the last active owner; make someone else an owner first.")
    if target.user_id == actor.pk:
        raise TenantError(f"You cannot {verb} your own membership; ask another owner or admin.")
    touches_owner = target.role == Role.OWNER or new_role == Role.OWNER
    if touches_owner and _actor_role(tenant, actor) != Role.OWNER:
        raise TenantError(OWNER_ONLY)


def can_manage_membership(*, actor: Membership | None, target: Membership) -> bool:
    """Display hint: may ``actor`` change ``target`` at all (not themselves; owners only by owners)?

    The write services enforce the full rules (including the last-owner rule)
    whatever this says.
    """
    if actor is None or actor.status != Status.ACTIVE or actor.tenant_id != target.tenant_id:
        return False
    if actor.user_id == target.user_id:
        return False
    return target.role != Role.OWNER or actor.role == Role.OWNER


def _member_snapshot(membership: Membership) -> dict[str, str]:
    return {"role": membership.role, "status": membership.status}


# --- membership writes ---------------------------------------------------------------------


def _invite(*, tenant: Tenant, email: str, role: str, actor: User | None) -> Membership:
    if role not in Role.values:
        raise TenantError(f"Unknown role {role!r}.")
    user = _user_for_email(email)
    membership, created = Membership.objects.select_for_update().get_or_create(
        tenant=tenant, user=user, defaults={"role": role, "status": Status.INVITED, "invited_by": actor}
    )
    before: dict[str, str] | None = None
    if not created:
        if membership.status == Status.ACTIVE:
            raise TenantError(f"{user.email} is already a member of {tenant.name}.")
        revokes_owner = membership.role == Role.OWNER and role != Role.OWNER
        if revokes_owner and actor is not None and _actor_role(tenant, actor) != Role.OWNER:
            raise TenantError(OWNER_ONLY)
        before = _member_snapshot(membership)
        membership.role = role
        membership.status = Status.INVITED
        membership.invited_by = actor
        membership.invited_at = timezone.now()
        membership.save(update_fields=["role", "status", "invited_by", "invited_at"])
    # Invited again: an earlier removal no longer keeps them out of SSO sign-in.
    MembershipRemoval.objects.for_tenant(tenant).filter(user=user).delete()
    record(
        "member.invite",
        tenant=tenant,
        actor=_audit_actor(actor),
        target=membership,
        metadata={"email": user.email, "role": role, "before": before, "after": _member_snapshot(membership)},
    )
    _after_commit_send_invitation(membership.pk)
    return membership


@transaction.atomic
def membership_invite(*, tenant: Tenant, email: str, role: str = Role.MEMBER, actor: User | None = None) -> Membership:
    """Invite ``email`` to ``tenant`` with ``role`` and e-mail them a link after commit.

    Re-inviting an invited or disabled member refreshes the invitation. Only an
    owner may invite someone as owner. Raises TenantError if the person is
    already an active member, the tenant is suspended or the rules refuse.
    """
    tenant = _lock_tenant(tenant)
    if role == Role.OWNER and actor is not None and _actor_role(tenant, actor) != Role.OWNER:
        raise TenantError(OWNER_ONLY)
    return _invite(tenant=tenant, email=email, role=role, actor=actor)


@transaction.atomic
def membership_resend(*, membership: Membership, actor: User | None = None) -> Membership:
    """Send a fresh invitation link (a new 7-day window) to a member who has not accepted yet.

    Raises TenantError if the membership is not an open invitation or the tenant is suspended.
    """
    tenant = _lock_tenant(membership.tenant_id)
    locked = _lock_membership(tenant, membership)
    if locked.status != Status.INVITED:
        raise TenantError(f"{locked.user.email} has no open invitation to resend.")
    locked.invited_at = timezone.now()
    locked.save(update_fields=["invited_at"])
    record(
        "member.invite_resend",
        tenant=tenant,
        actor=_audit_actor(actor),
        target=locked,
        metadata={"email": locked.user.email, "role": locked.role},
    )
    _after_commit_send_invitation(locked.pk)
    return locked


@transaction.atomic
def membership_change_role(*, membership: Membership, role: str, actor: User) -> Membership:
    """Give someone else's membership a new base role; audited with before and after.

    Raises TenantError for an unknown role, one's own membership, an owner
    change by a non-owner, demoting the last active owner, or a suspended tenant.
    Changing to the current role is a no-op (nothing recorded).
    """
    if role not in Role.values:
        raise TenantError("Choose one of the listed roles.")
    tenant = _lock_tenant(membership.tenant_id)
    locked = _lock_membership(tenant, membership)
    if locked.role == role:
        return locked
    _check_change_allowed(tenant=tenant, target=locked, actor=actor, new_role=role, verb="change the role of")
    before = _member_snapshot(locked)
    locked.role = role
    locked.save(update_fields=["role"])
    record(
        "member.role_change",
        tenant=tenant,
        actor=_audit_actor(actor),
        target=locked,
        metadata={"email": locked.user.email, "before": before, "after": _member_snapshot(locked)},
    )
    return locked


@transaction.atomic
def membership_set_disabled(*, membership: Membership, disabled: bool, actor: User) -> Membership:
    """Disable a membership (access ends at once) or enable it again.

    Enabling restores an active membership if the person had joined, or the
    open invitation if they had not. Same rules as a role change; raises TenantError.
    """
    tenant = _lock_tenant(membership.tenant_id)
    locked = _lock_membership(tenant, membership)
    if disabled == (locked.status == Status.DISABLED):
        return locked
    if disabled:
        _check_change_allowed(tenant=tenant, target=locked, actor=actor, verb="disable")
        new_status = Status.DISABLED
    else:
        _check_change_allowed(tenant=tenant, target=locked, actor=actor, new_role=locked.role, verb="enable")
        new_status = Status.ACTIVE if locked.joined_at else Status.INVITED
    before = _member_snapshot(locked)
    locked.status = new_status
    locked.save(update_fields=["status"])
    record(
        "member.disable" if disabled else "member.enable",
        tenant=tenant,
        actor=_audit_actor(actor),
        target=locked,
        metadata={"email": locked.user.email, "before": before, "after": _member_snapshot(locked)},
    )
    if disabled:
        _sign_out_after_commit(locked.user, reason="membership_disabled", actor=actor)
    return locked


def _sign_out_after_commit(user: User, *, reason: str, actor: User | None) -> None:
    """Deprovisioning ends the person's sessions everywhere once the change is committed."""
    transaction.on_commit(partial(sign_out_everywhere, user, reason=reason, by=actor), robust=True)


@transaction.atomic
def membership_remove(*, membership: Membership, actor: User) -> Membership:
    """Delete someone else's membership (or withdraw their invitation); audited with what was removed.

    Raises TenantError for one's own membership, an owner removed by a
    non-owner, the last active owner, or a suspended tenant. Returns the
    removed (unsaved) membership.
    """
    tenant = _lock_tenant(membership.tenant_id)
    locked = _lock_membership(tenant, membership)
    _check_change_allowed(tenant=tenant, target=locked, actor=actor, verb="remove")
    before = _member_snapshot(locked)
    email = locked.user.email
    record(
        "member.remove",
        tenant=tenant,
        actor=_audit_actor(actor),
        target=locked,
        metadata={"email": email, "before": before, "after": None},
    )
    user = locked.user
    # Remember the removal so that SSO does not quietly provision the person again.
    MembershipRemoval.objects.update_or_create(
        tenant=tenant, user=user, defaults={"removed_at": timezone.now(), "removed_by": actor}
    )
    locked.delete()
    _sign_out_after_commit(user, reason="membership_removed", actor=actor)
    return locked


@transaction.atomic
def membership_accept(*, membership: Membership, user: User) -> Membership:
    """Activate an invitation for the signed-in invitee.

    Raises TenantError if the invitation belongs to someone else, is no longer
    open, or the tenant is suspended.
    """
    tenant = _lock_tenant(membership.tenant_id)
    locked = _lock_membership(tenant, membership)
    if locked.user_id != user.pk:
        raise TenantError("This invitation was sent to someone else.")
    if locked.status != Status.INVITED:
        raise TenantError("This invitation has already been used or was withdrawn.")
    locked.status = Status.ACTIVE
    locked.joined_at = timezone.now()
    locked.save(update_fields=["status", "joined_at"])
    record("member.join", tenant=tenant, actor=Actor.for_user(user), target=locked, metadata={"role": locked.role})
    return locked


@transaction.atomic
def invitation_accept_with_password(*, membership: Membership, password: str) -> Membership:
    """First visit of a new invitee: set their password, verify their e-mail, activate the membership.

    The signed link proves control of the mailbox, so the address is marked
    verified. ``password`` must already have passed the password validators
    (the form does that). The caller then sends the person to sign in; this
    does not log them in. Raises TenantError if the invitee already has a
    password (they should sign in instead) or the invitation cannot be accepted.
    """
    user = User.objects.select_for_update().get(pk=membership.user_id)
    if user.has_usable_password():
        raise TenantError("You already have a password. Sign in to accept the invitation.")
    account_services.password_set_from_invitation(user=user, password=password)
    return membership_accept(membership=membership, user=user)


# --- tenants -------------------------------------------------------------------------------


@transaction.atomic
def tenant_create(*, slug: str, name: str, owner_email: str, actor: User | None = None) -> Tenant:
    """Create a tenant and invite its first owner (e-mail sent after commit).

    Raises TenantError on a reserved, malformed or taken slug; nothing is written then.
    """
    slug = slug.strip().lower()
    if slug in RESERVED_SLUGS:
        raise TenantError(f"“{slug}” is reserved; choose another slug.")
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantError(f"The slug “{slug}” is already taken.")
    tenant = Tenant(slug=slug, name=name.strip())
    tenant.full_clean()
    try:
        # A savepoint, so a concurrent create of the same slug ends as a form error.
        with transaction.atomic():
            tenant.save()
    except IntegrityError:
        raise TenantError(f"The slug “{slug}” is already taken.") from None
    record(
        "tenant.create", tenant=tenant, actor=_audit_actor(actor), target=tenant, metadata={"slug": slug, "name": name}
    )
    record(
        "tenant.create", tenant=None, actor=_audit_actor(actor), target=tenant, metadata={"slug": slug, "name": name}
    )
    _invite(tenant=tenant, email=owner_email, role=Role.OWNER, actor=actor)
    return tenant


@transaction.atomic
def tenant_set_status(*, tenant: Tenant, suspended: bool, reason: str = "", actor: User | None = None) -> Tenant:
    """Suspend (read-only) or reactivate a tenant; audited on the tenant's and the platform's chain.

    A suspension needs a reason. Raises TenantError if the tenant is already in
    the requested state or no reason is given.
    """
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if suspended == locked.is_suspended:
        raise TenantError(f"{locked.name} is already {'suspended' if suspended else 'active'}.")
    if suspended and not reason.strip():
        raise TenantError("Give a reason for the suspension; the tenant's members will see it.")
    before = locked.status
    locked.status = Tenant.Status.SUSPENDED if suspended else Tenant.Status.ACTIVE
    locked.suspended_at = timezone.now() if suspended else None
    locked.suspended_reason = reason.strip() if suspended else ""
    locked.save(update_fields=["status", "suspended_at", "suspended_reason"])
    action = "tenant.suspend" if suspended else "tenant.reactivate"
    meta: dict[str, Any] = {"before": before, "after": locked.status, "reason": locked.suspended_reason}
    record(action, tenant=locked, actor=_audit_actor(actor), target=locked, metadata=meta)
    record(action, tenant=None, actor=_audit_actor(actor), target=locked, metadata={**meta, "slug": locked.slug})
    events.status_changed.send(sender=Tenant, tenant=locked, suspended=suspended)
    return locked
