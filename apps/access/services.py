"""The decision point and the writes that change who may do what.

``authorize()`` is the only place that decides access. Every write here is
atomic, audited with before/after, and bumps the tenant's access version so
that cached permission sets are never used again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.models import Group
from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from apps.access import permsets
from apps.access.catalog import BUILTIN_ROLES, OBJECT_ACTIONS, PERMISSIONS, READ_ONLY_ACTIONS, require_known
from apps.access.models import DeniedDecision, Role, RoleBinding
from apps.audit.services import Actor, record
from apps.core import context
from apps.tenants.models import Membership, Tenant


class AccessError(ValueError):
    """A change the access rules refuse; the message is meant for the user."""


@dataclass(frozen=True, slots=True)
class Decision:
    """An access decision with the reasons (the path) that led to it."""

    allowed: bool
    action: str
    reasons: tuple[str, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.allowed


def _resource_label(resource: Any) -> tuple[str, str]:
    if resource is None:
        return "", ""
    meta = getattr(resource, "_meta", None)
    return (meta.model_name if meta else type(resource).__name__.lower()), str(getattr(resource, "pk", ""))


def authorize(
    subject: Membership | None,
    action: str,
    resource: Any = None,
    *,
    tenant: Tenant | None = None,
    log_denial: bool = True,
    for_reading: bool = False,
) -> Decision:
    """May ``subject`` perform ``action`` (on ``resource``)?

    ``subject`` is a membership (an API client joins with the runtime API);
    ``tenant`` is the tenant the request is about and defaults to the
    subject's. ``resource`` is a tenant-owned object or None.

    Deny by default. Order: membership and tenant (a suspended tenant may
    only use READ_ONLY_ACTIONS, unless the caller only shows a page:
    ``for_reading``) → role permissions
    (membership role, assigned roles, IdP-group roles) → object grants
    (django-guardian, to the member or to one of its roles). Break-glass
    elevations join here later. Denials are written to the decision log
    unless ``log_denial`` is False. Raises ValueError for an action that is
    not in the catalog.
    """
    require_known(action)
    tenant_id = tenant.pk if tenant is not None else getattr(subject, "tenant_id", None)
    if subject is None or subject.tenant_id != tenant_id:
        return _deny(subject, action, resource, tenant_id, ("not a member of this tenant",), log_denial)
    if resource is not None and getattr(resource, "tenant_id", None) != tenant_id:
        return _deny(subject, action, resource, tenant_id, ("resource belongs to another tenant",), log_denial)
    if subject.status != Membership.Status.ACTIVE:
        return _deny(subject, action, resource, tenant_id, (f"membership is {subject.status}",), log_denial)
    if action not in READ_ONLY_ACTIONS and not for_reading and subject.tenant.is_suspended:
        return _deny(subject, action, resource, tenant_id, ("tenant is suspended (read-only)",), log_denial)
    permset = permsets.for_membership(subject)
    sources = permset.actions.get(action)
    if sources:
        return Decision(True, action, tuple(f"{source} grants {action} tenant-wide" for source in sources))
    if resource is not None and action in OBJECT_ACTIONS:
        sources = permset.objects.get(action, {}).get(str(resource.pk))
        if sources:
            kind, ident = _resource_label(resource)
            return Decision(True, action, tuple(f"{source}: {action} on {kind} {ident}" for source in sources))
        kind, ident = _resource_label(resource)
        reason = f"no role grants {action} and no grant on {kind} {ident}"
    else:
        reason = f"no role grants {action}"
    return _deny(subject, action, resource, tenant_id, (reason,), log_denial)


def _deny(
    subject: Membership | None,
    action: str,
    resource: Any,
    tenant_id: int | None,
    reasons: tuple[str, ...],
    log: bool,
) -> Decision:
    decision = Decision(False, action, reasons)
    if log and tenant_id is not None:
        kind, ident = _resource_label(resource)
        # Only use the user if it is already loaded: a denial must not cost an extra query.
        user = subject.user if subject is not None and Membership.user.is_cached(subject) else None
        DeniedDecision.objects.create(
            tenant_id=tenant_id,
            subject_type="member",
            subject_id=str(subject.pk) if subject is not None else "",
            subject_display=getattr(user, "email", "") or context.current().user_display,
            action=action,
            resource_type=kind,
            resource_id=ident,
            reasons=list(reasons),
            request_id=context.current().request_id,
        )
    return decision


# --- escalation ------------------------------------------------------------


def held_permissions(subject: Membership) -> frozenset[str]:
    """The catalog permissions ``subject`` holds tenant-wide (from its cached permission set)."""
    if subject.status != Membership.Status.ACTIVE:
        return frozenset()
    return frozenset(permsets.for_membership(subject).actions)


def _refuse_escalation(acting: Membership | None, permissions: set[str] | frozenset[str]) -> None:
    """Nobody hands out (in a role, binding or grant) a permission they do not hold themselves."""
    if acting is None:
        return
    missing = sorted(set(permissions) - held_permissions(acting))
    if missing:
        raise AccessError(f"You cannot hand out permissions you do not hold yourself: {', '.join(missing)}.")


# --- roles -----------------------------------------------------------------


def _check_permissions(names: list[str]) -> list[str]:
    unknown = sorted(set(names) - set(PERMISSIONS))
    if unknown:
        raise AccessError(f"Unknown permission(s): {', '.join(unknown)}.")
    return sorted(set(names))


def _new_group(tenant: Tenant, key: str) -> Group:
    return Group.objects.create(name=f"tenant:{tenant.pk}:role:{key}")


@transaction.atomic
def roles_seed_builtin(*, tenant: Tenant) -> list[Role]:
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
                builtin=True,
                group=_new_group(tenant, builtin.key),
            )
        elif sorted(role.permissions) != sorted(builtin.permissions):
            role.permissions = sorted(builtin.permissions)
            role.save(update_fields=["permissions"])
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
    by: Any = None,
    acting: Membership | None = None,
) -> Role:
    """Create a custom role. Raises AccessError on unknown permissions, a taken key or name, or escalation.

    ``acting`` is the member making the change: they may only put permissions they hold into the role.
    """
    perms = _check_permissions(permissions)
    _refuse_escalation(acting, set(perms))
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
        group=_new_group(tenant, key),
    )
    record("role.create", tenant=tenant, actor=_actor(by), target=role, metadata={"after": _role_state(role)})
    permsets.bump_version(tenant.pk)
    return role


@transaction.atomic
def role_update(
    *,
    role: Role,
    name: str,
    permissions: list[str],
    description: str = "",
    by: Any = None,
    acting: Membership | None = None,
) -> Role:
    """Edit a custom role. Raises AccessError for built-in roles, unknown permissions, or escalation.

    ``acting`` may add only permissions they hold; permissions already in the role may stay.
    """
    locked = Role.objects.select_for_update().get(pk=role.pk)
    if locked.builtin:
        raise AccessError("Built-in roles cannot be edited; create a custom role instead.")
    _refuse_escalation(acting, set(permissions) - set(locked.permissions))
    before = _role_state(locked)
    locked.name, locked.description, locked.permissions = name, description, _check_permissions(permissions)
    locked.save(update_fields=["name", "description", "permissions"])
    record(
        "role.update",
        tenant=locked.tenant_id,
        actor=_actor(by),
        target=locked,
        metadata={"before": before, "after": _role_state(locked)},
    )
    permsets.bump_version(locked.tenant_id)
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
def role_delete(*, role: Role, force: bool = False, by: Any = None) -> None:
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
    record(
        "role.delete",
        tenant=tenant_id,
        actor=_actor(by),
        target_type="role",
        target_id=role.pk,
        metadata={"before": state, "bindings_removed": bound},
    )
    permsets.bump_version(tenant_id)


# --- bindings --------------------------------------------------------------


@transaction.atomic
def binding_add(
    *,
    role: Role,
    membership: Membership | None = None,
    idp_group: str = "",
    by: Any = None,
    acting: Membership | None = None,
) -> RoleBinding:
    """Bind ``role`` to a member or an IdP group of the same tenant. Raises AccessError otherwise.

    ``acting`` may bind only roles whose permissions they hold themselves.
    """
    _refuse_escalation(acting, set(role.permissions))
    if (membership is None) == (not idp_group):
        raise AccessError("Bind a role to exactly one member or one group.")
    if membership is not None and membership.tenant_id != role.tenant_id:
        raise AccessError("That member belongs to another tenant.")
    binding, created = RoleBinding.objects.get_or_create(
        tenant_id=role.tenant_id, role=role, membership=membership, idp_group=idp_group.strip()
    )
    if created:
        record(
            "role.bind",
            tenant=role.tenant_id,
            actor=_actor(by),
            target=role,
            metadata={"member": membership.pk if membership else None, "group": idp_group or None},
        )
        permsets.bump_version(role.tenant_id)
    return binding


@transaction.atomic
def binding_remove(*, binding: RoleBinding, by: Any = None) -> None:
    record(
        "role.unbind",
        tenant=binding.tenant_id,
        actor=_actor(by),
        target=binding.role,
        metadata={"member": binding.membership_id, "group": binding.idp_group or None},
    )
    binding.delete()
    permsets.bump_version(binding.tenant_id)


# --- object grants ---------------------------------------------------------


def _check_object_action(action: str, obj: Any) -> str:
    if action not in OBJECT_ACTIONS:
        raise AccessError(f"{action} cannot be granted on a single object.")
    app_label, model, codename = OBJECT_ACTIONS[action]
    if (obj._meta.app_label, obj._meta.model_name) != (app_label, model):
        raise AccessError(f"{action} applies to {model}s only.")
    return f"{app_label}.{codename}"


def grant_object(
    *,
    action: str,
    obj: Any,
    role: Role | None = None,
    membership: Membership | None = None,
    by: Any = None,
    acting: Membership | None = None,
) -> None:
    """Grant ``action`` on one object to a role or a member of the object's tenant.

    Raises AccessError for an action that is not object-scoped, a wrong object
    type, a holder of another tenant, or when ``acting`` may not do ``action``
    on ``obj`` themselves.
    """
    if acting is not None and not authorize(acting, action, obj, log_denial=False):
        raise AccessError(f"You cannot grant {action} on this object: you may not do it yourself.")
    _change_object_grant(assign_perm, "grant.add", action=action, obj=obj, role=role, membership=membership, by=by)


def revoke_object(
    *, action: str, obj: Any, role: Role | None = None, membership: Membership | None = None, by: Any = None
) -> None:
    """Revoke a grant made by ``grant_object``; takes effect on the very next decision."""
    _change_object_grant(remove_perm, "grant.remove", action=action, obj=obj, role=role, membership=membership, by=by)


@transaction.atomic
def _change_object_grant(
    change: Any, audit_action: str, *, action: str, obj: Any, role: Role | None, membership: Membership | None, by: Any
) -> None:
    perm = _check_object_action(action, obj)
    change(perm, _grant_holder(obj, role, membership), obj)
    record(
        audit_action,
        tenant=obj.tenant_id,
        actor=_actor(by),
        target=obj,
        metadata={
            "action": action,
            "role": role.key if role else None,
            "member": membership.pk if membership else None,
        },
    )
    permsets.bump_version(obj.tenant_id)


def _grant_holder(obj: Any, role: Role | None, membership: Membership | None) -> Any:
    if (role is None) == (membership is None):
        raise AccessError("Grant to exactly one role or one member.")
    owner_tenant = (role or membership).tenant_id  # type: ignore[union-attr]
    if owner_tenant != obj.tenant_id:
        raise AccessError("Grants cannot cross tenants.")
    return role.group if role is not None else membership.user  # type: ignore[union-attr]


def _role_state(role: Role) -> dict[str, Any]:
    return {"key": role.key, "name": role.name, "permissions": sorted(role.permissions)}


def _actor(by: Any) -> Actor:
    return Actor.for_user(by) if by is not None else Actor.from_context()
