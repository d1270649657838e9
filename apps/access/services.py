"""The decision point and the writes that change who may do what.

``authorize()`` is the only place that decides access. Every write here is
atomic, audited with before/after, and bumps the tenant's access version so
that cached permission sets are never used again.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Model, Q, QuerySet
from guardian.models import GroupObjectPermission
from guardian.shortcuts import assign_perm, remove_perm

from apps.access import permsets
from apps.access.catalog import (
    ADMINISTRATIVE_PERMISSIONS,
    BUILTIN_ROLES,
    CLASSIFICATIONS,
    CLASSIFIED_ACTIONS,
    CODENAME_ACTIONS,
    DEFAULT_CLEARANCE,
    OBJECT_ACTIONS,
    PERMISSIONS,
    READ_ONLY_ACTIONS,
    classification_rank,
    require_known,
)
from apps.access.models import DeniedDecision, Role, RoleBinding
from apps.audit.services import Actor, record
from apps.core import context
from apps.tenants.models import Membership, Tenant

M = TypeVar("M", bound=Model)


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
    gate = _gate(subject, action, tenant_id, for_reading=for_reading)
    if gate:
        return _deny(subject, action, resource, tenant_id, (gate,), log_denial)
    if resource is not None and getattr(resource, "tenant_id", None) != tenant_id:
        return _deny(subject, action, resource, tenant_id, ("resource belongs to another tenant",), log_denial)
    permset = permsets.for_membership(subject)  # type: ignore[arg-type]  # _gate refused None
    sources = permset.actions.get(action)
    kind, ident = _resource_label(resource)
    level = _classification(action, resource)
    uncleared = ""
    if sources and level is None:
        return Decision(True, action, tuple(f"{source} grants {action} tenant-wide" for source in sources))
    if sources and level is not None:
        # Restricted-data rule: a role-wide permission reaches only as far as the role's clearance.
        rank = classification_rank(level)
        covering = permset.sources_covering(action, rank)
        if covering:
            return Decision(
                True,
                action,
                tuple(
                    f"{source} grants {action} tenant-wide, cleared for {level} datasets ({kind} {ident} is {level})"
                    for source in covering
                ),
            )
        uncleared = (
            f"{kind} {ident} is {level}: the role-wide {action} of "
            f"{', '.join(sources)} covers only datasets up to "
            f"{_rank_label(permset.clearance_for(action))}; {level} datasets need an explicit grant"
        )
    if resource is not None and action in OBJECT_ACTIONS:
        granted = permset.objects.get(action, {}).get(str(resource.pk))
        if granted:
            note = " (explicit grant: the rule for datasets above a role's clearance)" if uncleared else ""
            return Decision(True, action, tuple(f"{source}: {action} on {kind} {ident}{note}" for source in granted))
        reason = uncleared or f"no role grants {action} and no grant on {kind} {ident}"
    else:
        reason = uncleared or f"no role grants {action}"
    return _deny(subject, action, resource, tenant_id, (reason,), log_denial)


def _gate(subject: Membership | None, action: str, tenant_id: int | None, *, for_reading: bool) -> str:
    """Why ``subject`` cannot act in the tenant at all (before any permission is looked at); "" if it can."""
    if subject is None or subject.tenant_id != tenant_id:
        return "not a member of this tenant"
    if subject.status != Membership.Status.ACTIVE:
        return f"membership is {subject.status}"
    if action not in READ_ONLY_ACTIONS and not for_reading and subject.tenant.is_suspended:
        return "tenant is suspended (read-only)"
    return ""


def _classification(action: str, resource: Any) -> str | None:
    """The resource's classification when it limits ``action`` (a dataset permission on a dataset), else None."""
    if resource is None or action not in CLASSIFIED_ACTIONS:
        return None
    app_label, model, _ = OBJECT_ACTIONS[action]
    meta = getattr(resource, "_meta", None)
    if meta is None or (meta.app_label, meta.model_name) != (app_label, model):
        return None
    return str(getattr(resource, "classification", "") or "unclassified")


def _rank_label(rank: int) -> str:
    return CLASSIFICATIONS[rank] if 0 <= rank < len(CLASSIFICATIONS) else "nothing"


def restrict(qs: QuerySet[M], *, subject: Membership | None, tenant: Tenant, actions: Sequence[str]) -> QuerySet[M]:
    """``qs`` (rows of ``tenant``) narrowed in SQL to rows ``subject`` may perform any of ``actions`` on.

    The list form of ``authorize()``, with the same rules and no extra query
    beyond loading the permission set: a tenant-wide permission covers every
    row, except that a dataset permission covers datasets only up to the
    role's clearance; object grants add their rows. Lists are reads, so a
    suspended tenant's lists stay readable. Nothing is written to the decision log.
    """
    model = qs.model
    meta = model._meta
    clauses: list[Q] = []
    for action in actions:
        require_known(action)
        if _gate(subject, action, tenant.pk, for_reading=True):
            continue
        permset = permsets.for_membership(subject)  # type: ignore[arg-type]
        grantable = action in OBJECT_ACTIONS and OBJECT_ACTIONS[action][:2] == (meta.app_label, meta.model_name)
        if action in permset.actions:
            if not (action in CLASSIFIED_ACTIONS and grantable):
                return qs.filter(tenant=tenant)
            rank = permset.clearance_for(action)
            clauses.append(Q(classification__in=list(CLASSIFICATIONS[: rank + 1])))
        if grantable:
            pks = []
            for raw in permset.objects.get(action, {}):
                try:
                    pks.append(meta.pk.to_python(raw))
                except ValidationError:
                    continue
            if pks:
                clauses.append(Q(pk__in=pks))
    if not clauses:
        return qs.none()
    return qs.filter(functools.reduce(operator.or_, clauses), tenant=tenant)


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


def ensure_no_escalation(
    *,
    actor: Membership | None,
    tenant: Tenant,
    permissions: Iterable[str] = (),
    clearance: str = DEFAULT_CLEARANCE,
    grants: Iterable[tuple[str, Any]] = (),
) -> None:
    """The one no-escalation rule: nobody hands out more than they hold themselves.

    Every path that hands out a role, a binding, an object grant or an
    invitation calls this with everything the thing carries: its tenant-wide
    ``permissions`` (each held by ``actor`` tenant-wide; dataset permissions
    cleared at least up to ``clearance``) and its object ``grants``
    (``(action, object)`` pairs that ``actor`` must be allowed to do on that
    object themselves). ``actor`` None is the system itself (seeding,
    provisioning), which is not checked. Raises AccessError naming what the
    actor lacks; reads only the actor's cached permission set and the objects.
    """
    if actor is None:
        return
    if actor.tenant_id != tenant.pk or actor.status != Membership.Status.ACTIVE:
        raise AccessError("Only an active member of this tenant can hand out access in it.")
    permset = permsets.for_membership(actor)
    wanted = set(permissions)
    missing = sorted(wanted - set(permset.actions))
    if missing:
        raise AccessError(f"You cannot hand out permissions you do not hold yourself: {', '.join(missing)}.")
    rank = classification_rank(clearance)
    short = sorted(action for action in wanted & CLASSIFIED_ACTIONS if permset.clearance_for(action) < rank)
    if short:
        raise AccessError(
            f"You cannot hand out {', '.join(short)} for {clearance} datasets: "
            f"you hold it only up to {_rank_label(min(permset.clearance_for(a) for a in short))}."
        )
    refused = [
        f"{action} on {_resource_label(obj)[0]} “{obj}”"
        for action, obj in grants
        if not authorize(actor, action, obj, tenant=tenant, log_denial=False)
    ]
    if refused:
        raise AccessError(f"You cannot hand out {', '.join(refused)}: you may not do it yourself.")


def role_object_grants(role: Role) -> list[tuple[str, Any]]:
    """The object grants ``role`` carries, as ``(action, object)`` pairs."""
    return _group_object_grants([role.group_id]).get(role.group_id, [])


def _group_object_grants(group_ids: list[int]) -> dict[int, list[tuple[str, Any]]]:
    """Object grants held by the given role groups: one query, plus one per object type."""
    rows = GroupObjectPermission.objects.filter(
        group_id__in=group_ids, permission__codename__in=list(CODENAME_ACTIONS)
    ).values_list("group_id", "content_type_id", "object_pk", "permission__codename")
    by_type: dict[int, list[tuple[int, str, str]]] = {}
    for group_id, content_type_id, object_pk, codename in rows:
        by_type.setdefault(content_type_id, []).append((group_id, object_pk, CODENAME_ACTIONS[codename]))
    grants: dict[int, list[tuple[str, Any]]] = {}
    for content_type_id, entries in by_type.items():
        model = ContentType.objects.get_for_id(content_type_id).model_class()
        if model is None:
            continue
        objects = {str(pk): obj for pk, obj in model._default_manager.in_bulk([e[1] for e in entries]).items()}
        for group_id, object_pk, action in entries:
            obj = objects.get(object_pk)
            if obj is not None:  # a grant on a deleted object hands out nothing
                grants.setdefault(group_id, []).append((action, obj))
    return grants


def ensure_may_hand_out_role(*, actor: Membership | None, role: Role) -> None:
    """``actor`` may give ``role`` to someone: they hold its permissions, clearance and object grants."""
    ensure_no_escalation(
        actor=actor,
        tenant=role.tenant,
        permissions=role.permissions,
        clearance=role.clearance,
        grants=role_object_grants(role),
    )


def ensure_may_hand_out_builtin_role(*, actor: Membership | None, tenant: Tenant, key: str) -> None:
    """``actor`` may make someone's membership role ``key`` (invite, resend, role change, re-enable).

    Covers the built-in role's permissions and clearance and the object grants
    given to the tenant's row of that role. Raises AccessError.
    """
    if key not in BUILTIN_ROLES:
        raise AccessError(f"Unknown role {key!r}.")
    _builtin_handouts(actor=actor, tenant=tenant, keys=[key])


def builtin_roles_handable(*, actor: Membership | None, tenant: Tenant) -> frozenset[str]:
    """Keys of the built-in roles ``actor`` may hand out (display: which roles a form offers).

    A fixed number of queries: the built-in role rows, their object grants, one per object type.
    """
    return frozenset(
        key
        for key, error in _builtin_handouts(actor=actor, tenant=tenant, keys=list(BUILTIN_ROLES), collect=True).items()
        if error is None
    )


def _builtin_handouts(
    *, actor: Membership | None, tenant: Tenant, keys: list[str], collect: bool = False
) -> dict[str, AccessError | None]:
    if actor is None:
        return dict.fromkeys(keys)
    rows = {
        role.key: role.group_id
        for role in Role.objects.for_tenant(tenant).filter(key__in=keys, builtin=True).only("key", "group_id")
    }
    grants = _group_object_grants(list(rows.values()))
    results: dict[str, AccessError | None] = {}
    for key in keys:
        builtin = BUILTIN_ROLES[key]
        try:
            ensure_no_escalation(
                actor=actor,
                tenant=tenant,
                permissions=builtin.permissions,
                clearance=builtin.clearance,
                grants=grants.get(rows.get(key, -1), ()),
            )
        except AccessError as exc:
            if not collect:
                raise
            results[key] = exc
        else:
            results[key] = None
    return results


def is_administrator(membership: Membership) -> bool:
    """Whether ``membership`` holds an administrative permission (catalog ``administrative``) from any source.

    See ``administrator_ids``; at most one query.
    """
    return membership.pk in administrator_ids([membership])


def administrator_ids(memberships: Iterable[Membership]) -> set[int]:
    """The ids of those ``memberships`` that hold an administrative permission from any source.

    Any source counts: the membership role, roles bound to the member and
    roles bound to an IdP group the member is in (the groups of their last
    SSO sign-in), in the membership's own tenant. Object grants never carry an
    administrative permission. A membership that is not active is no
    administrator. At most one query, whatever the number of memberships
    (the sign-in policy asks this for every tenant of a person at once).
    """
    active = [m for m in memberships if m.status == Membership.Status.ACTIVE]
    found = {
        m.pk
        for m in active
        if m.role in BUILTIN_ROLES and not ADMINISTRATIVE_PERMISSIONS.isdisjoint(BUILTIN_ROLES[m.role].permissions)
    }
    rest = [m for m in active if m.pk not in found]
    if not rest:
        return found
    match = Q(membership_id__in=[m.pk for m in rest])
    for m in rest:
        if m.idp_groups:
            match |= Q(tenant_id=m.tenant_id, membership__isnull=True, idp_group__in=list(m.idp_groups))
    admin_bindings = RoleBinding.objects.filter(match, role__permissions__overlap=sorted(ADMINISTRATIVE_PERMISSIONS))
    bound_members: set[int] = set()
    bound_groups: set[tuple[int, str]] = set()
    for membership_id, tenant_id, group in admin_bindings.values_list("membership_id", "tenant_id", "idp_group"):
        if membership_id is not None:
            bound_members.add(membership_id)
        else:
            bound_groups.add((tenant_id, group))
    for m in rest:
        if m.pk in bound_members or any((m.tenant_id, group) in bound_groups for group in m.idp_groups or ()):
            found.add(m.pk)
    return found


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
    by: Any = None,
    acting: Membership | None = None,
) -> Role:
    """Create a custom role. Raises AccessError on unknown permissions, a taken key or name, or escalation.

    ``acting`` is the member making the change: they may only put permissions they hold into the role,
    and dataset permissions only up to the clearance they hold them at.
    """
    perms = _check_permissions(permissions)
    clearance = _check_clearance(clearance)
    ensure_no_escalation(actor=acting, tenant=tenant, permissions=perms, clearance=clearance)
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
    clearance: str | None = None,
    by: Any = None,
    acting: Membership | None = None,
) -> Role:
    """Edit a custom role. Raises AccessError for built-in roles, unknown permissions, or escalation.

    ``acting`` may add only permissions they hold; permissions already in the role may stay. Raising
    the clearance hands out every dataset permission of the role at the new level, so ``acting``
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
    ensure_no_escalation(actor=acting, tenant=locked.tenant, permissions=handed_out, clearance=new_clearance)
    before = _role_state(locked)
    locked.name, locked.description, locked.permissions = name, description, perms
    locked.clearance = new_clearance
    locked.save(update_fields=["name", "description", "permissions", "clearance"])
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

    ``acting`` may bind only roles whose permissions (at the role's clearance) and object grants
    they hold themselves, for a member and for an IdP group alike.
    """
    ensure_may_hand_out_role(actor=acting, role=role)
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
    ensure_no_escalation(actor=acting, tenant=obj.tenant, grants=[(action, obj)])
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


def _actor(by: Any) -> Actor:
    return Actor.for_user(by) if by is not None else Actor.from_context()
