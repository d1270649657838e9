"""Loading and caching what a subject may do.

A ``PermissionSet`` is everything ``authorize()`` needs about one membership:
the tenant-wide actions with where each comes from, and the object grants.
It is loaded in at most three queries (bindings with their roles, the
member's guardian grants, the roles' guardian grants) and then cached:

- on the membership object for the rest of the request (warm decisions touch
  nothing but dictionaries), and
- in a per-process LRU keyed by the tenant's *access version*, a token kept in
  the shared Django cache. Every role, binding or grant change replaces the
  token (``bump_version``), so every process misses on its next request.
  A lost token (cache eviction or restart) is simply replaced: stale entries
  are never reachable again, they only age out of the LRU.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from threading import Lock

from django.core.cache import cache
from django.db.models import Q
from guardian.models import GroupObjectPermission, UserObjectPermission

from apps.access.catalog import BUILTIN_ROLES, CODENAME_ACTIONS, DEFAULT_CLEARANCE, classification_rank
from apps.access.models import RoleBinding
from apps.tenants.models import Membership

VERSION_KEY = "bastion:access-version:{tenant_id}"
LOCAL_CACHE_SIZE = 20_000
MEMO_ATTR = "_bastion_permission_set"


@dataclass(frozen=True, slots=True)
class PermissionSet:
    """Actions granted tenant-wide (with their sources) and per object.

    ``clearance`` maps each tenant-wide source (a role, as the reasons name it)
    to the rank (``catalog.classification_rank``) of the most sensitive dataset
    classification its CLASSIFIED_ACTIONS cover.
    """

    actions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    objects: dict[str, dict[str, tuple[str, ...]]] = field(default_factory=dict)
    clearance: dict[str, int] = field(default_factory=dict)

    def sources_covering(self, action: str, rank: int) -> tuple[str, ...]:
        """The tenant-wide sources of ``action`` cleared for a resource of classification ``rank``."""
        return tuple(s for s in self.actions.get(action, ()) if self.clearance.get(s, -1) >= rank)

    def clearance_for(self, action: str) -> int:
        """The highest classification rank ``action`` is held tenant-wide for; -1 if not held."""
        return max((self.clearance.get(s, -1) for s in self.actions.get(action, ())), default=-1)


class _LRU:
    def __init__(self, size: int) -> None:
        self._data: OrderedDict[tuple, PermissionSet] = OrderedDict()
        self._size = size
        self._lock = Lock()

    def get(self, key: tuple) -> PermissionSet | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: tuple, value: PermissionSet) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_local = _LRU(LOCAL_CACHE_SIZE)


def tenant_version(tenant_id: int) -> str:
    """The tenant's current access version token (created if the cache lost it)."""
    key = VERSION_KEY.format(tenant_id=tenant_id)
    token = cache.get(key)
    if token is None:
        cache.add(key, uuid.uuid4().hex, timeout=None)
        token = cache.get(key)
    return str(token)


def bump_version(tenant_id: int) -> None:
    """Invalidate every cached permission set of the tenant, in every process."""
    cache.set(VERSION_KEY.format(tenant_id=tenant_id), uuid.uuid4().hex, timeout=None)


def clear_local_cache() -> None:
    _local.clear()


def _add(target: dict[str, tuple[str, ...]], key: str, source: str) -> None:
    target[key] = (*target.get(key, ()), source)


def load(membership: Membership) -> PermissionSet:
    """Build a membership's permission set from the database (three queries)."""
    actions: dict[str, tuple[str, ...]] = {}
    objects: dict[str, dict[str, tuple[str, ...]]] = {}
    clearance: dict[str, int] = {}
    base = BUILTIN_ROLES.get(membership.role)
    if base is not None:
        via = f"role {base.name} (membership role)"
        clearance[via] = classification_rank(base.clearance)
        for action in base.permissions:
            _add(actions, action, via)
    groups = list(membership.idp_groups or ())
    bindings = RoleBinding.objects.filter(tenant_id=membership.tenant_id).filter(
        Q(membership_id=membership.pk) | Q(idp_group__in=groups) if groups else Q(membership_id=membership.pk)
    )
    role_groups: dict[int, str] = {}
    for binding in bindings.select_related("role"):
        role = binding.role
        via = f"role {role.name} (group {binding.idp_group})" if binding.idp_group else f"role {role.name} (assigned)"
        role_groups[role.group_id] = via
        clearance[via] = classification_rank(role.clearance or DEFAULT_CLEARANCE)
        for action in role.permissions:
            _add(actions, action, via)
    codenames = list(CODENAME_ACTIONS)
    for codename, object_pk in UserObjectPermission.objects.filter(
        user_id=membership.user_id, permission__codename__in=codenames
    ).values_list("permission__codename", "object_pk"):
        _add(objects.setdefault(CODENAME_ACTIONS[codename], {}), object_pk, "direct grant to member")
    group_filter = Q(group_id__in=list(role_groups))
    if base is not None:
        group_filter |= Q(
            group__bastion_role__tenant_id=membership.tenant_id,
            group__bastion_role__key=base.key,
            group__bastion_role__builtin=True,
        )
    for codename, object_pk, group_id in GroupObjectPermission.objects.filter(
        group_filter, permission__codename__in=codenames
    ).values_list("permission__codename", "object_pk", "group_id"):
        via = role_groups.get(group_id, f"role {base.name if base else '?'} (membership role)")
        _add(objects.setdefault(CODENAME_ACTIONS[codename], {}), object_pk, f"grant to {via}")
    return PermissionSet(actions=actions, objects=objects, clearance=clearance)


def for_membership(membership: Membership) -> PermissionSet:
    """The membership's permission set: request memo, then process LRU, then the database."""
    memo = membership.__dict__.get(MEMO_ATTR)
    if memo is not None:
        return memo
    key = (
        membership.tenant_id,
        tenant_version(membership.tenant_id),
        membership.pk,
        membership.role,
        tuple(sorted(membership.idp_groups or ())),
    )
    permset = _local.get(key)
    if permset is None:
        permset = load(membership)
        _local.put(key, permset)
    membership.__dict__[MEMO_ATTR] = permset
    return permset


def forget(membership: Membership) -> None:
    """Drop the request memo (after a change made in this same request)."""
    membership.__dict__.pop(MEMO_ATTR, None)
