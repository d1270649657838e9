"""The writes that change who may do what: roles, bindings and object grants.

Every write here is atomic, passes the no-escalation rule
(``escalation.ensure_no_escalation``) for what it hands out, is audited with
before/after, and bumps the tenant's access version (``permsets.bump_version``)
in the same transaction, so cached permission sets are never used again.
The bump comes before the audit record: every write then takes the tenant
row's lock before the audit chain's, in the order the tenant services take
them, so the two cannot deadlock. ``actor`` is always the acting membership;
None is the system itself (seeding, provisioning), which hands out without a
check. The decisions themselves live in ``apps.access.decisions``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from apps.access import permsets
from apps.access.escalation import AccessError, ensure_may_hand_out_role, ensure_no_escalation
from apps.access.models import Role, RoleBinding
from apps.access.permissions import (
    BUILTIN_ROLES,
    CLASSIFICATIONS,
    CLASSIFIED_ACTIONS,
    DEFAULT_CLEARANCE,
    OBJECT_ACTIONS,
    PERMISSIONS,
    classification_rank,
)
from apps.audit.services import Actor, record
from apps.core import context
from apps.tenants.models import Membership, Tenant

__all__ = [
    "AccessError",
    "binding_create",
    "binding_delete",
    "binding_timebox_create",
    "binding_timebox_end",
    "builtin_roles_seed",
    "grant_assign",
    "grant_revoke",
    "role_create",
    "role_delete",
    "role_delete_preview",
    "role_update",
]


# --- roles -----------------------------------------------------------------


def _check_permissions(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - set(PERMISSIONS))
    if unknown:
        raise AccessError(f"Unknown permission(s): {', '.join(unknown)}.")
    return sorted(set(names))


def _new_group(tenant: Tenant, key: str) -> Group:
    return Group.objects.create(name=f"tenant:{tenant.pk}:role:{key}")


@transaction.atomic
def builtin_roles_seed(*, tenant: Tenant) -> list[Role]:
    """Create (or refresh) the built-in roles of a tenant. Idempotent."""
    roles = []
    for builtin in BUILTIN_ROLES.values():
        role = Role.objects.for_tenant(tenant).filter(key=builtin.key).first()
        if role is None:
            role = Role.objects.create(
                tenant=tenant,
                key=builtin.key,
                name=builtin.name,
                description=builtin.description,
                permissions=sorted(builtin.permissions),
                clearance=builtin.clearance,
                builtin=True,
                group=_new_group(tenant, builtin.key),
            )
        elif sorted(role.permissions) != sorted(builtin.permissions) or role.clearance != builtin.clearance:
            role.permissions = sorted(builtin.permissions)
            role.clearance = builtin.clearance
            role.save(update_fields=["permissions", "clearance"])
        roles.append(role)
    permsets.bump_version(tenant.pk)
    return roles


@transaction.atomic
def role_create(
    *,
    tenant: Tenant,
    key: str,
    name: str,
    permissions: list[str],
    description: str = "",
    clearance: str = DEFAULT_CLEARANCE,
    actor: Membership | None = None,
) -> Role:
    """Create a custom role. Raises AccessError on unknown permissions, a taken key or name, or escalation.

    ``actor`` may only put permissions they hold into the role, and dataset permissions only up to the
    clearance they hold them at.
    """
    perms = _check_permissions(permissions)
    clearance = _check_clearance(clearance)
    ensure_no_escalation(actor=actor, tenant=tenant, permissions=perms, clearance=clearance)
    if Role.objects.for_tenant(tenant).filter(key=key).exists() or key in BUILTIN_ROLES:
        raise AccessError(f"A role with the key “{key}” already exists.")
    if Role.objects.for_tenant(tenant).filter(name__iexact=name).exists():
        raise AccessError(f"A role named “{name}” already exists.")
    role = Role.objects.create(
        tenant=tenant,
        key=key,
        name=name,
        description=description,
        permissions=perms,
        clearance=clearance,
        group=_new_group(tenant, key),
    )
    permsets.bump_version(tenant.pk)
    record("role.create", tenant=tenant, actor=_audit_actor(actor), target=role, metadata={"after": _role_state(role)})
    return role


@transaction.atomic
def role_update(
    *,
    role: Role,
    name: str,
    permissions: list[str],
    description: str = "",
    clearance: str | None = None,
    actor: Membership | None = None,
) -> Role:
    """Edit a custom role. Raises AccessError for built-in roles, unknown permissions, or escalation.

    ``actor`` may add only permissions they hold; permissions already in the role may stay. Raising
    the clearance hands out every dataset permission of the role at the new level, so ``actor``
    must hold those at that level too. ``clearance`` None keeps the current one.
    """
    locked = Role.objects.select_for_update().get(pk=role.pk)
    if locked.builtin:
        raise AccessError("Built-in roles cannot be edited; create a custom role instead.")
    perms = _check_permissions(permissions)
    new_clearance = _check_clearance(clearance if clearance is not None else locked.clearance)
    handed_out = set(perms) - set(locked.permissions)
    if classification_rank(new_clearance) > classification_rank(locked.clearance):
        handed_out |= set(perms) & CLASSIFIED_ACTIONS
    ensure_no_escalation(actor=actor, tenant=locked.tenant, permissions=handed_out, clearance=new_clearance)
    before = _role_state(locked)
    locked.name, locked.description, locked.permissions = name, description, perms
    locked.clearance = new_clearance
    locked.save(update_fields=["name", "description", "permissions", "clearance"])
    permsets.bump_version(locked.tenant_id)
    record(
        "role.update",
        tenant=locked.tenant_id,
        actor=_audit_actor(actor),
        target=locked,
        metadata={"before": before, "after": _role_state(locked)},
    )
    return locked


def role_delete_preview(*, role: Role) -> list[dict[str, Any]]:
    """Who loses what if ``role`` is deleted: one row per binding."""
    return [
        {
            "subject": binding.membership.user.email if binding.membership_id else f"group {binding.idp_group}",
            "permissions": list(role.permissions),
        }
        for binding in role.bindings.select_related("membership__user")
    ]


@transaction.atomic
def role_delete(*, role: Role, force: bool = False, actor: Membership | None = None) -> None:
    """Delete a custom role. Raises AccessError for built-ins, or if bound and not ``force``."""
    locked = Role.objects.select_for_update().get(pk=role.pk)
    if locked.builtin:
        raise AccessError("Built-in roles cannot be deleted.")
    bound = locked.bindings.count()
    if bound and not force:
        raise AccessError(f"The role is in use by {bound} binding(s); confirm to remove them with the role.")
    state = _role_state(locked)
    group = locked.group
    tenant_id = locked.tenant_id
    locked.delete()
    # guardian leaves object permissions behind when their holder goes; remove them with it.
    group.groupobjectpermission_set.all().delete()
    group.delete()
    permsets.bump_version(tenant_id)
    record(
        "role.delete",
        tenant=tenant_id,
        actor=_audit_actor(actor),
        target_type="role",
        target_id=role.pk,
        metadata={"before": state, "bindings_removed": bound},
    )


# --- bindings --------------------------------------------------------------


@transaction.atomic
def binding_create(
    *,
    role: Role,
    membership: Membership | None = None,
    idp_group: str = "",
    actor: Membership | None = None,
) -> RoleBinding:
    """Bind ``role`` to a member or an IdP group of the same tenant. Raises AccessError otherwise.

    ``actor`` may bind only roles whose permissions (at the role's clearance) and object grants
    they hold themselves, for a member and for an IdP group alike.
    """
    ensure_may_hand_out_role(actor=actor, role=role)
    if (membership is None) == (not idp_group):
        raise AccessError("Bind a role to exactly one member or one group.")
    if membership is not None and membership.tenant_id != role.tenant_id:
        raise AccessError("That member belongs to another tenant.")
    binding, created = RoleBinding.objects.get_or_create(
        tenant_id=role.tenant_id, role=role, membership=membership, idp_group=idp_group.strip(), expires_at=None
    )
    if created:
        permsets.bump_version(role.tenant_id)
        record(
            "role.bind",
            tenant=role.tenant_id,
            actor=_audit_actor(actor),
            target=role,
            metadata={"member": membership.pk if membership else None, "group": idp_group or None},
        )
    return binding


@transaction.atomic
def binding_delete(*, binding: RoleBinding, actor: Membership | None = None) -> None:
    """Remove one binding; the role's holders through it lose it on their next decision."""
    permsets.bump_version(binding.tenant_id)
    record(
        "role.unbind",
        tenant=binding.tenant_id,
        actor=_audit_actor(actor),
        target=binding.role,
        metadata={"member": binding.membership_id, "group": binding.idp_group or None},
    )
    binding.delete()


@transaction.atomic
def binding_timebox_create(
    *,
    role: Role,
    membership: Membership,
    expires_at: datetime,
    reason: str,
    actor: Membership | None = None,
) -> RoleBinding:
    """Give ``role`` to ``membership`` until ``expires_at`` (a break-glass elevation's grant).

    The caller owns the workflow that justified it (approvals, the
    no-escalation rule at policy time) and passes ``actor`` None for the system.
    Every decision compares ``expires_at`` with the clock, so the binding
    gives nothing afterwards even if ``binding_end`` is never called.
    ``reason`` is what decisions' reasons say the role comes from.
    Raises AccessError for a member of another tenant or a time in the past.
    """
    if actor is not None:
        ensure_may_hand_out_role(actor=actor, role=role)
    if membership.tenant_id != role.tenant_id:
        raise AccessError("That member belongs to another tenant.")
    if expires_at <= timezone.now():
        raise AccessError("A time-boxed binding must end in the future.")
    binding = RoleBinding.objects.create(
        tenant_id=role.tenant_id, role=role, membership=membership, expires_at=expires_at, reason=reason[:300]
    )
    permsets.bump_version(role.tenant_id)
    record(
        "role.bind",
        tenant=role.tenant_id,
        actor=_audit_actor(actor),
        target=role,
        metadata={
            "member": membership.pk,
            "binding": binding.pk,
            "expires_at": expires_at.isoformat(),
            "reason": reason,
        },
    )
    return binding


@transaction.atomic
def binding_timebox_end(*, tenant_id: int, binding_id: int, actor: Membership | None = None) -> bool:
    """End a time-boxed binding now (or leave it ended); returns whether it was still in force.

    Idempotent: the row keeps its history (``expires_at`` becomes the end
    time). Either way the tenant's access version is bumped, so cached sets
    still holding the binding are dropped everywhere.
    """
    now = timezone.now()
    changed = RoleBinding.objects.for_tenant(tenant_id).filter(pk=binding_id, expires_at__gt=now).update(expires_at=now)
    permsets.bump_version(tenant_id)
    if changed:
        record(
            "role.unbind",
            tenant=tenant_id,
            actor=_audit_actor(actor),
            target_type="rolebinding",
            target_id=binding_id,
            metadata={"binding": binding_id, "ended_early": True},
        )
    return bool(changed)


# --- object grants ---------------------------------------------------------


def object_permission(action: str, obj: Any) -> str:
    """The guardian permission (``app.codename``) that grants ``action`` on ``obj``.

    Raises AccessError when ``action`` cannot be granted on a single object or
    does not apply to ``obj``'s kind. Every path that grants on one object (to a
    member, a role or an API client) names its permission through this.
    """
    if action not in OBJECT_ACTIONS:
        raise AccessError(f"{action} cannot be granted on a single object.")
    app_label, model, codename = OBJECT_ACTIONS[action]
    if (obj._meta.app_label, obj._meta.model_name) != (app_label, model):
        raise AccessError(f"{action} applies to {model}s only.")
    return f"{app_label}.{codename}"


def grant_assign(
    *,
    action: str,
    obj: Any,
    role: Role | None = None,
    membership: Membership | None = None,
    actor: Membership | None = None,
) -> None:
    """Grant ``action`` on one object to a role or a member of the object's tenant.

    Raises AccessError for an action that is not object-scoped, a wrong object
    type, a holder of another tenant, or when ``actor`` may not do ``action``
    on ``obj`` themselves.
    """
    ensure_no_escalation(actor=actor, tenant=obj.tenant, grants=[(action, obj)])
    _change_object_grant(
        assign_perm, "grant.add", action=action, obj=obj, role=role, membership=membership, actor=actor
    )


def grant_revoke(
    *,
    action: str,
    obj: Any,
    role: Role | None = None,
    membership: Membership | None = None,
    actor: Membership | None = None,
) -> None:
    """Revoke a grant made by ``grant_assign``; takes effect on the very next decision."""
    _change_object_grant(
        remove_perm, "grant.remove", action=action, obj=obj, role=role, membership=membership, actor=actor
    )


@transaction.atomic
def _change_object_grant(
    change: Any,
    audit_action: str,
    *,
    action: str,
    obj: Any,
    role: Role | None,
    membership: Membership | None,
    actor: Membership | None,
) -> None:
    perm = object_permission(action, obj)
    change(perm, _grant_holder(obj, role, membership), obj)
    permsets.bump_version(obj.tenant_id)
    record(
        audit_action,
        tenant=obj.tenant_id,
        actor=_audit_actor(actor),
        target=obj,
        metadata={
            "action": action,
            "role": role.key if role else None,
            "member": membership.pk if membership else None,
        },
    )


def _grant_holder(obj: Any, role: Role | None, membership: Membership | None) -> Any:
    if (role is None) == (membership is None):
        raise AccessError("Grant to exactly one role or one member.")
    owner_tenant = (role or membership).tenant_id  # type: ignore[union-attr]
    if owner_tenant != obj.tenant_id:
        raise AccessError("Grants cannot cross tenants.")
    return role.group if role is not None else membership.user  # type: ignore[union-attr]


def _check_clearance(clearance: str) -> str:
    if clearance not in CLASSIFICATIONS:
        raise AccessError(f"Unknown clearance {clearance!r}: choose one of {', '.join(CLASSIFICATIONS)}.")
    return clearance


def _role_state(role: Role) -> dict[str, Any]:
    return {
        "key": role.key,
        "name": role.name,
        "permissions": sorted(role.permissions),
        "clearance": role.clearance,
    }


def _audit_actor(actor: Membership | None) -> Actor:
    """The audit actor for ``actor``: its user, without loading it again when the request already knows it."""
    if actor is None:
        return Actor.from_context()
    if not Membership.user.is_cached(actor) and context.current().user_id == actor.user_id:
        return Actor.from_context()
    return Actor.for_user(actor.user)
