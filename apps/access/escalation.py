"""The one no-escalation rule: nobody hands out more than they hold themselves.

Every path that hands out a role, a binding, an object grant or an invitation
(``services``, ``members``) calls ``ensure_no_escalation`` with everything the
thing carries, through the helpers here for roles and built-in roles. The
checks read the actor's memoised permission set and ``can()`` (never
logged: handing out is not an access attempt).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.contenttypes.models import ContentType
from guardian.models import GroupObjectPermission

from apps.access import permsets
from apps.access.decisions import can, rank_label, resource_label
from apps.access.models import Role
from apps.access.permissions import (
    BUILTIN_ROLES,
    CLASSIFIED_ACTIONS,
    CODENAME_ACTIONS,
    DEFAULT_CLEARANCE,
    classification_rank,
)
from apps.tenants.models import Membership, Tenant


class AccessError(ValueError):
    """A change the access rules refuse; the message is meant for the user."""


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
            f"you hold it only up to {rank_label(min(permset.clearance_for(a) for a in short))}."
        )
    refused = [
        f"{action} on {resource_label(obj)[0]} “{obj}”"
        for action, obj in grants
        if not can(actor, action, obj, tenant=tenant)
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
