"""Membership writes that hand out or take away access: the console's way to invite, change and remove people.

``apps.tenants.services`` owns the membership rows and their rules (owners,
the last owner, suspended tenants) but sits on the floor below ``access`` and
may not ask it anything. A membership's built-in role is access, though: it
carries permissions and the object grants given to that role. So the writes
that hand out a role, and the removal that must take a person's object grants
with it, are composed here, each in one transaction:

- ``member_invite``, ``member_resend``, ``member_change_role`` and
  ``member_set_disabled`` (enabling gives the role back) first pass the
  no-escalation rule (``escalation.ensure_may_hand_out_builtin_role``), then call
  the tenants service;
- ``member_remove`` calls the tenants service, then revokes every object grant
  given directly to the person on this tenant's objects (audited), so nothing
  comes back if they are invited again;
- ``member_add_active`` makes an account created for one tenant (an SSO
  emergency account) an active member at once, under the same rule.

Faces call these, never the tenants services they wrap (a test walks the
source for that). Every function takes the acting membership as ``actor``
(None: the system) and raises ``TenantError`` (the tenants rules) or
``AccessError`` (escalation).
"""

from __future__ import annotations

from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone
from guardian.models import UserObjectPermission

from apps.access import permsets
from apps.access.escalation import AccessError, ensure_may_hand_out_builtin_role
from apps.access.permissions import CODENAME_ACTIONS
from apps.accounts.models import User
from apps.audit.services import Actor, record
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership, Tenant

__all__ = [
    "AccessError",
    "member_add_active",
    "member_change_role",
    "member_invite",
    "member_remove",
    "member_resend",
    "member_set_disabled",
    "user_grants_revoke",
]


def _user(actor: Membership | None) -> User | None:
    """The acting person as the tenants services record them (None: the system)."""
    return actor.user if actor is not None else None


def _ensure_may_give(*, tenant: Tenant, role: str, actor: Membership | None) -> None:
    # A membership of another tenant, or one that is not active, is refused by the rule itself.
    ensure_may_hand_out_builtin_role(actor=actor, tenant=tenant, key=role)


@transaction.atomic
def member_invite(*, tenant: Tenant, email: str, role: str, actor: Membership | None) -> Membership:
    """Invite ``email`` with built-in ``role``; ``actor`` must hold everything the role carries.

    Raises AccessError (escalation) or TenantError (tenants rules); nothing is written then.
    """
    _ensure_may_give(tenant=tenant, role=role, actor=actor)
    return tenant_services.membership_invite(tenant=tenant, email=email, role=role, actor=_user(actor))


@transaction.atomic
def member_resend(*, membership: Membership, actor: Membership | None) -> Membership:
    """Send a fresh invitation link: a new window for the invited role, so the same rule as inviting."""
    _ensure_may_give(tenant=membership.tenant, role=membership.role, actor=actor)
    return tenant_services.membership_resend(membership=membership, actor=_user(actor))


@transaction.atomic
def member_change_role(*, membership: Membership, role: str, actor: Membership) -> Membership:
    """Give someone else's membership the built-in ``role``; ``actor`` must hold everything it carries."""
    if role != membership.role:
        _ensure_may_give(tenant=membership.tenant, role=role, actor=actor)
    return tenant_services.membership_change_role(membership=membership, role=role, actor=actor.user)


@transaction.atomic
def member_set_disabled(*, membership: Membership, disabled: bool, actor: Membership) -> Membership:
    """Disable a membership, or enable it again; enabling hands the role back, so it is checked."""
    if not disabled:
        _ensure_may_give(tenant=membership.tenant, role=membership.role, actor=actor)
    return tenant_services.membership_set_disabled(membership=membership, disabled=disabled, actor=actor.user)


@transaction.atomic
def member_remove(*, membership: Membership, actor: Membership) -> Membership:
    """Remove someone else's membership and every object grant given directly to them in this tenant.

    Raises TenantError for what the tenants rules refuse; nothing is removed then.
    """
    tenant = membership.tenant
    removed = tenant_services.membership_remove(membership=membership, actor=actor.user)
    user_grants_revoke(tenant=tenant, user=removed.user, actor=actor, reason="membership_removed")
    return removed


def user_grants_revoke(*, tenant: Tenant, user: User, actor: Membership | None = None, reason: str = "") -> int:
    """Delete the object grants given directly to ``user`` on objects of ``tenant``; returns how many.

    Grants on other tenants' objects are left alone. Audited (with each grant
    removed) and the tenant's access version bumped when anything was removed.
    """
    with transaction.atomic():
        rows = list(
            UserObjectPermission.objects.filter(user=user, permission__codename__in=list(CODENAME_ACTIONS)).values_list(
                "pk", "content_type_id", "object_pk", "permission__codename"
            )
        )
        doomed: list[int] = []
        removed: list[dict[str, Any]] = []
        by_type: dict[int, list[tuple[int, str, str]]] = {}
        for pk, content_type_id, object_pk, codename in rows:
            by_type.setdefault(content_type_id, []).append((pk, object_pk, codename))
        for content_type_id, entries in by_type.items():
            model = ContentType.objects.get_for_id(content_type_id).model_class()
            if model is None:
                continue
            # Only objects of this tenant: the same person may hold grants in another tenant.
            ours = {
                str(pk)
                for pk in model._default_manager.filter(
                    tenant_id=tenant.pk, pk__in=[object_pk for _, object_pk, _ in entries]
                ).values_list("pk", flat=True)
            }
            for pk, object_pk, codename in entries:
                if object_pk in ours:
                    doomed.append(pk)
                    removed.append(
                        {"action": CODENAME_ACTIONS[codename], "type": model._meta.model_name, "id": object_pk}
                    )
        if not doomed:
            return 0
        UserObjectPermission.objects.filter(pk__in=doomed).delete()
        permsets.bump_version(tenant.pk)
        record(
            "grant.revoke_all",
            tenant=tenant,
            actor=Actor.for_user(actor.user) if actor is not None else Actor.system(),
            target_type="user",
            target_id=user.pk,
            metadata={"email": user.email, "reason": reason, "grants": removed},
        )
        return len(doomed)


@transaction.atomic
def member_add_active(*, tenant: Tenant, user: User, role: str, actor: Membership, via: str) -> Membership:
    """Make ``user`` (an account made for this, e.g. an emergency account) an active member at once.

    No invitation: the caller made the account and holds its credentials. Only an
    owner gives the owner role, and ``actor`` must hold everything ``role`` carries
    (the no-escalation rule). The tenant row is locked first, as for every membership
    change. Audited as ``member.add`` with ``via``. Raises AccessError (escalation)
    or TenantError (unknown role, owner rule, already a member); nothing is written then.
    """
    if role not in Membership.Role.values:
        raise tenant_services.TenantError("Choose one of the listed roles.")
    _ensure_may_give(tenant=tenant, role=role, actor=actor)
    locked = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if role == Membership.Role.OWNER and actor.role != Membership.Role.OWNER:
        raise tenant_services.TenantError(tenant_services.OWNER_ONLY)
    if Membership.objects.for_tenant(locked).filter(user=user).exists():
        raise tenant_services.TenantError(f"{user.email} is already a member of {locked.name}.")
    membership = Membership.objects.create(
        tenant=locked,
        user=user,
        role=role,
        status=Membership.Status.ACTIVE,
        invited_by=actor.user,
        joined_at=timezone.now(),
    )
    record(
        "member.add",
        tenant=locked,
        actor=Actor.for_user(actor.user),
        target=membership,
        metadata={"email": user.email, "role": role, "via": via},
    )
    return membership
