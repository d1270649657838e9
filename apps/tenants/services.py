"""Tenant and membership writes. Each is atomic, audited and returns the object."""

from __future__ import annotations

from typing import Any

from django.core import signing
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import Actor, record
from apps.tenants.models import RESERVED_SLUGS, Membership, Tenant

INVITATION_SALT = "bastion.invitation"
INVITATION_MAX_AGE = 7 * 24 * 3600


class TenantError(ValueError):
    """A tenant or membership change that the rules refuse; the message is for the user."""


def _actor(by: User | None) -> Actor:
    return Actor.for_user(by) if by is not None else Actor.system()


def invitation_token(membership: Membership) -> str:
    """A signed, expiring token naming one membership (and the invitee's e-mail)."""
    return signing.dumps({"m": membership.pk, "e": membership.user.email}, salt=INVITATION_SALT, compress=True)


def invitation_membership(token: str) -> Membership:
    """The invited membership a token names. Raises TenantError if expired, forged or used."""
    try:
        data = signing.loads(token, salt=INVITATION_SALT, max_age=INVITATION_MAX_AGE)
    except signing.SignatureExpired:
        raise TenantError("This invitation has expired. Ask for a new one.") from None
    except signing.BadSignature:
        raise TenantError("This invitation link is not valid.") from None
    membership = (
        Membership.objects.select_related("tenant", "user").filter(pk=data.get("m"), user__email=data.get("e")).first()
    )
    if membership is None or membership.status != Membership.Status.INVITED:
        raise TenantError("This invitation has already been used or was withdrawn.")
    return membership


def _user_for_email(email: str) -> User:
    email = email.strip().lower()
    user = User.objects.filter(email__iexact=email).first()
    return user or User.objects.create_user(email=email)


@transaction.atomic
def membership_invite(
    *, tenant: Tenant, email: str, role: str = Membership.Role.MEMBER, by: User | None = None
) -> Membership:
    """Invite ``email`` to ``tenant`` with ``role``. Re-inviting an invited member refreshes the invitation.

    Raises TenantError if the person is already an active member.
    """
    if role not in Membership.Role.values:
        raise TenantError(f"Unknown role {role!r}.")
    user = _user_for_email(email)
    membership, created = Membership.objects.select_for_update().get_or_create(
        tenant=tenant, user=user, defaults={"role": role, "status": Membership.Status.INVITED, "invited_by": by}
    )
    if not created:
        if membership.status == Membership.Status.ACTIVE:
            raise TenantError(f"{user.email} is already a member of {tenant.name}.")
        membership.role = role
        membership.status = Membership.Status.INVITED
        membership.invited_by = by
        membership.invited_at = timezone.now()
        membership.save(update_fields=["role", "status", "invited_by", "invited_at"])
    record(
        "member.invite",
        tenant=tenant,
        actor=_actor(by),
        target=membership,
        metadata={"email": user.email, "role": role},
    )
    transaction.on_commit(lambda: _send_invitation(membership.pk))
    return membership


def _send_invitation(membership_id: int) -> None:
    from apps.tenants.emails import send_invitation

    send_invitation(membership_id=membership_id)


@transaction.atomic
def tenant_create(*, slug: str, name: str, owner_email: str, by: User | None = None) -> Tenant:
    """Create a tenant and invite its first owner. Raises TenantError on a taken or reserved slug."""
    slug = slug.strip().lower()
    if slug in RESERVED_SLUGS:
        raise TenantError(f"“{slug}” is reserved; choose another slug.")
    if Tenant.objects.filter(slug=slug).exists():
        raise TenantError(f"The slug “{slug}” is already taken.")
    tenant = Tenant(slug=slug, name=name.strip())
    tenant.full_clean()
    tenant.save()
    record("tenant.create", tenant=tenant, actor=_actor(by), target=tenant, metadata={"slug": slug, "name": name})
    membership_invite(tenant=tenant, email=owner_email, role=Membership.Role.OWNER, by=by)
    return tenant


@transaction.atomic
def membership_accept(*, membership: Membership, user: User) -> Membership:
    """Activate an invitation for the signed-in invitee. Raises TenantError otherwise."""
    locked = Membership.objects.select_for_update().get(pk=membership.pk)
    if locked.user_id != user.pk:
        raise TenantError("This invitation was sent to someone else.")
    if locked.status != Membership.Status.INVITED:
        raise TenantError("This invitation has already been used or was withdrawn.")
    locked.status = Membership.Status.ACTIVE
    locked.joined_at = timezone.now()
    locked.save(update_fields=["status", "joined_at"])
    record("member.join", tenant=locked.tenant_id, actor=Actor.for_user(user), target=locked)
    return locked


@transaction.atomic
def tenant_set_status(*, tenant: Tenant, suspended: bool, reason: str = "", by: User | None = None) -> Tenant:
    """Suspend (read-only) or reactivate a tenant; audited on the tenant's and the platform's chain."""
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    before = locked.status
    locked.status = Tenant.Status.SUSPENDED if suspended else Tenant.Status.ACTIVE
    locked.suspended_at = timezone.now() if suspended else None
    locked.suspended_reason = reason.strip() if suspended else ""
    locked.save(update_fields=["status", "suspended_at", "suspended_reason"])
    action = "tenant.suspend" if suspended else "tenant.reactivate"
    meta: dict[str, Any] = {"before": before, "after": locked.status, "reason": locked.suspended_reason}
    record(action, tenant=locked, actor=_actor(by), target=locked, metadata=meta)
    record(action, tenant=None, actor=_actor(by), target=locked, metadata={**meta, "slug": locked.slug})
    return locked
