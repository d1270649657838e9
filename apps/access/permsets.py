"""Loading and caching what a subject may do.

A ``PermissionSet`` is everything ``authorize()`` needs about one membership:
the tenant-wide actions with where each comes from, and the object grants.
It is loaded in two queries (bindings with their roles; the guardian grants
to the member on this tenant's objects and to its roles, as one UNION) and
then cached:

- on the membership object for the rest of the request (warm decisions touch
  nothing but dictionaries), and
- in a per-process LRU keyed by the tenant's *access version*
  (``Tenant.access_version``). Every role, binding, grant or group-sync change
  bumps it with one ``UPDATE … SET access_version = access_version + 1`` in the
  change's own transaction (``bump_version``). The tenant entry's membership
  query (``select_related("tenant")``) reads the version with the tenant row,
  so a new request costs no cache round trip and no extra query, and every
  process misses on its very next request after the change commits. Stale
  entries are never reachable again; they only age out of the LRU.

Why this is safe without a shared cache:

- Each request loads the tenant row afresh (the entry query; the runtime API
  does the same), and the version is read *before* the permission rows: a
  request that sees the new version also sees the change's rows, so nothing
  stale is ever stored under a new version. (One that reads the old version
  and then newer rows stores newer data under an old key: harmless.)
- A bump that rolls back leaves the version where it was, so the next
  committed bump reuses its number. A set loaded inside the bumping
  transaction (it saw uncommitted rows) is therefore never put in the LRU
  (``_bumped_in_open_transaction``).
- The request memo lives on the membership object, which the entry query
  creates per request. A tenant object kept from before a change this
  process committed is noticed (``_latest``) and its set loaded afresh; one
  kept across requests in another process is not, which is why every entry
  loads the tenant row. ``Tenant.save()`` never writes the version back.

Time-boxed bindings (break-glass elevations) hold without any scheduler: the
set records when each such source ends (``PermissionSet.ends_at`` is the
earliest), and ``for_membership`` compares it with the clock on every call.
A set whose source has ended, from the request memo or the LRU alike, is
narrowed to what is still in force before anything decides with it. Sets
without a time box pay one attribute check (``ends_at is None``), no clock read.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from threading import Lock

from django.apps import apps
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.cache import cache
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.db.models import Q
from guardian.models import GroupObjectPermission, UserObjectPermission

from apps.access.models import Role, RoleBinding
from apps.access.permissions import (
    BUILTIN_ROLES,
    CODENAME_ACTIONS,
    DEFAULT_CLEARANCE,
    OBJECT_ACTIONS,
    classification_rank,
)
from apps.access.subjects import Subject
from apps.tenants.models import Membership, Tenant

LOCAL_CACHE_SIZE = 20_000
MEMO_ATTR = "_bastion_permission_set"
USER_GRANT = 0  # the holder column of a grant to the member itself (role groups have ids from 1)
BUMPED_ATTR = "_bastion_access_bumped"  # on the connection: tenants bumped in its open transaction
# The shared-cache copy of a tenant's access version (``published_version``) expires by itself, so a
# lost or out-of-order publish is healed from the tenant row within this time instead of never.
PUBLISHED_VERSION_TTL = 300


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
    # Time-boxed sources (a break-glass elevation's binding) → when they end (epoch seconds).
    expiring: dict[str, float] = field(default_factory=dict)
    ends_at: float | None = None  # the earliest of ``expiring``; None: nothing in the set ends

    def in_force(self, now: float) -> PermissionSet:
        """This set without the sources that ended at or before ``now`` (self when none has)."""
        if self.ends_at is None or self.ends_at > now:
            return self
        gone = {source for source, end in self.expiring.items() if end <= now}
        actions = {a: kept for a, srcs in self.actions.items() if (kept := tuple(s for s in srcs if s not in gone))}
        objects: dict[str, dict[str, tuple[str, ...]]] = {}
        for action, by_pk in self.objects.items():
            narrowed = {pk: kept for pk, srcs in by_pk.items() if (kept := tuple(s for s in srcs if s not in gone))}
            if narrowed:
                objects[action] = narrowed
        expiring = {source: end for source, end in self.expiring.items() if source not in gone}
        return PermissionSet(
            actions=actions,
            objects=objects,
            clearance={s: rank for s, rank in self.clearance.items() if s not in gone},
            expiring=expiring,
            ends_at=min(expiring.values(), default=None),
        )

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
        # No lock on the hot path: each OrderedDict call is atomic (C code under the GIL); a
        # key evicted by another thread between the two calls is only not moved to the end.
        value = self._data.get(key)
        if value is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager per decision here
                self._data.move_to_end(key)
            except KeyError:
                pass
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
# The newest committed access version this process bumped each tenant to. A tenant object that
# carries an older one was loaded before that change (kept across requests, or from before the
# change in this request): its set is loaded afresh instead of taken from the LRU.
_latest: dict[int, int] = {}


def bump_version(tenant_id: int) -> int:
    """Invalidate every cached permission set of the tenant, in every process; returns the new version.

    Call it in the transaction of the change (every access service does): the
    row lock it takes orders concurrent changes, so two changes are always two
    bumps, and the new version becomes visible exactly when the change does.
    One statement; no read-modify-write.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Tenant._meta.db_table} SET access_version = access_version + 1 WHERE id = %s"
            " RETURNING access_version",
            [tenant_id],
        )
        row = cursor.fetchone()
    version = int(row[0]) if row else 0
    if connection.in_atomic_block:
        bumped = _bumped_here()
        bumped.add(tenant_id)
        transaction.on_commit(functools.partial(_committed, tenant_id, version, bumped))
    else:
        _committed(tenant_id, version)
    return version


def tenant_status_changed(*, tenant: Tenant, **kwargs: object) -> None:
    """``tenants.events.status_changed``: a suspended tenant is read-only everywhere at once."""
    bump_version(tenant.pk)


def _committed(tenant_id: int, version: int, bumped: set[int] | None = None) -> None:
    if bumped is not None:
        bumped.discard(tenant_id)
    publish_version(tenant_id, version)
    # Several threads may race here; losing one only means a stale object goes unnoticed in this
    # process, the same as in every other process (the entry query is what keeps requests fresh).
    if _latest.get(tenant_id, 0) < version:
        _latest[tenant_id] = version


def version_cache_key(tenant_id: int) -> str:
    """The shared-cache key of the tenant's committed access version (read by the runtime API's token check)."""
    return f"access:version:{tenant_id}"


def publish_version(tenant_id: int, version: int) -> None:
    """Put the committed ``version`` in the shared cache (after the commit that made it; never an older one).

    Processes that keep subjects across requests (the runtime API) read this
    value with their one per-call cache read and key their permission sets by
    it, so a committed change is seen by the very next call in every process.
    Two commits of one tenant can run their hooks out of order: an older
    version never replaces a newer one that is already there. (The remaining
    get/set interleaving is bounded by ``PUBLISHED_VERSION_TTL``.)
    """
    key = version_cache_key(tenant_id)
    current = cache.get(key)
    if isinstance(current, int) and current > version:
        return
    cache.set(key, version, PUBLISHED_VERSION_TTL)


def published_version_load(tenant_id: int) -> int:
    """The tenant's access version from its row (one query), put back in the shared cache if absent there.

    For a reader whose shared-cache read missed. ``add``, not ``set``: a
    publish that happened meanwhile (a newer version) is never overwritten
    with the value this read may have seen before that commit.
    """
    version = Tenant.objects.filter(pk=tenant_id).values_list("access_version", flat=True).first() or 0
    cache.add(version_cache_key(tenant_id), version, PUBLISHED_VERSION_TTL)
    return version


def _bumped_here() -> set[int]:
    """The tenants this connection bumped in its open transaction (empty outside one).

    A tenant leaves the set when the transaction commits; after a rollback
    (Django has no hook for it) the set is dropped the next time it is looked
    at outside a transaction. A savepoint rolled back inside the transaction
    leaves its tenant in the set, which only means one more set is not cached.
    """
    wrapper = connections[DEFAULT_DB_ALIAS]
    bumped: set[int] | None = wrapper.__dict__.get(BUMPED_ATTR)
    if bumped is None or (bumped and not wrapper.in_atomic_block):
        bumped = wrapper.__dict__[BUMPED_ATTR] = set()
    return bumped


def _bumped_in_open_transaction(tenant_id: int) -> bool:
    return tenant_id in _bumped_here()


def clear_local_cache() -> None:
    _local.clear()
    _latest.clear()


def _add(target: dict[str, tuple[str, ...]], key: str, source: str) -> None:
    target[key] = (*target.get(key, ()), source)


@functools.cache
def _grant_rows_sql() -> str:
    """The one query behind a permission set's object grants (built once per process).

    Written out rather than composed with the ORM: a cold decision is on the
    request path, and composing and compiling a UNION with two subqueries cost
    three times what PostgreSQL needs to answer it. Two parts, UNION ALL:

    - grants to the member (a guardian user grant) on objects of *this*
      tenant. A person's user grants span every tenant they belong to; the
      permission set of one membership holds only its own tenant's, so
      "granted on at least one object" (``Scope`` "any_object") means one of
      this tenant's. The grantable models (OBJECT_ACTIONS) are looked up by
      label: ``access`` sits beside ``catalog`` and does not import it;
    - grants to the member's roles (guardian group grants): the groups of
      the bound roles, and of the tenant's row of the membership's built-in role.

    The third column is the role group's id, or USER_GRANT for a grant to the member.
    """
    user_perm, group_perm = UserObjectPermission._meta.db_table, GroupObjectPermission._meta.db_table
    permission, content_type = Permission._meta.db_table, ContentType._meta.db_table
    role = Role._meta.db_table
    in_tenant = " OR ".join(
        f"(g.content_type_id = (SELECT id FROM {content_type} WHERE app_label = '{app_label}' AND model = '{model}')"
        f" AND g.object_pk IN (SELECT CAST(id AS text) FROM {apps.get_model(app_label, model)._meta.db_table}"
        f" WHERE tenant_id = %(tenant)s))"
        for app_label, model in sorted({(app_label, model) for app_label, model, _ in OBJECT_ACTIONS.values()})
    )
    return (
        f"SELECT p.codename, g.object_pk, {USER_GRANT} FROM {user_perm} g JOIN {permission} p ON p.id = g.permission_id"
        f" WHERE g.user_id = %(user)s AND p.codename = ANY(%(codenames)s) AND ({in_tenant})"
        " UNION ALL"
        f" SELECT p.codename, g.object_pk, g.group_id FROM {group_perm} g JOIN {permission} p ON p.id = g.permission_id"
        " WHERE p.codename = ANY(%(codenames)s) AND (g.group_id = ANY(%(groups)s) OR g.group_id IN"
        f" (SELECT group_id FROM {role} WHERE tenant_id = %(tenant)s AND key = %(builtin)s AND builtin))"
    )


def _object_grant_rows(
    membership: Membership, role_group_ids: list[int], builtin_key: str
) -> list[tuple[str, str, int]]:
    """``(codename, object_pk, group_id or USER_GRANT)`` of the member's and its roles' grants: one query."""
    with connection.cursor() as cursor:
        cursor.execute(
            _grant_rows_sql(),
            {
                "user": membership.user_id,
                "tenant": membership.tenant_id,
                "codenames": list(CODENAME_ACTIONS),
                "groups": role_group_ids,
                "builtin": builtin_key,
            },
        )
        return cursor.fetchall()


def load(membership: Membership) -> PermissionSet:
    """Build a membership's permission set from the database (two queries: bindings, then grants)."""
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
    bindings = (
        RoleBinding.objects.filter(tenant_id=membership.tenant_id)
        .filter(Q(membership_id=membership.pk) | Q(idp_group__in=groups) if groups else Q(membership_id=membership.pk))
        .current()
    )
    role_groups: dict[int, str] = {}
    expiring: dict[str, float] = {}
    for binding in bindings.select_related("role"):
        role = binding.role
        if binding.expires_at is not None:
            # Each time box is its own source, so its end removes exactly what it gave.
            via = f"role {role.name} ({binding.reason or f'time-boxed binding #{binding.pk}'})"
            expiring[via] = binding.expires_at.timestamp()
        elif binding.idp_group:
            via = f"role {role.name} (group {binding.idp_group})"
        else:
            via = f"role {role.name} (assigned)"
        # The role's object grants go to a permanent binding of it when there is one: a time box
        # ending must not take away grants the member holds anyway.
        if binding.expires_at is None or role.group_id not in role_groups:
            role_groups[role.group_id] = via
        clearance[via] = classification_rank(role.clearance or DEFAULT_CLEARANCE)
        for action in role.permissions:
            _add(actions, action, via)
    # No built-in role: the key "" matches no role row.
    for codename, object_pk, group_id in _object_grant_rows(membership, list(role_groups), base.key if base else ""):
        if group_id == USER_GRANT:
            via = "direct grant to member"
        else:
            via = "grant to " + role_groups.get(group_id, f"role {base.name if base else '?'} (membership role)")
        _add(objects.setdefault(CODENAME_ACTIONS[codename], {}), object_pk, via)
    return PermissionSet(
        actions=actions,
        objects=objects,
        clearance=clearance,
        expiring=expiring,
        ends_at=min(expiring.values(), default=None),
    )


def for_membership(membership: Membership) -> PermissionSet:
    """The membership's permission set: request memo, then process LRU, then the database.

    The LRU key carries the tenant's ``access_version`` as loaded with the
    membership (the entry query joins the tenant row; a membership loaded
    without it loads the tenant here, one query), plus everything of the
    membership row the set depends on (role, IdP groups).
    """
    memo = membership.__dict__.get(MEMO_ATTR)
    if memo is not None:
        if memo.ends_at is None:
            return memo
        # A time box in the set: the clock decides, whatever the memo or the LRU hold.
        memo = membership.__dict__[MEMO_ATTR] = memo.in_force(time.time())
        return memo
    if type(membership) is not Membership:  # an API client (``subjects.Subject``); after the memo: warm stays as fast
        return for_subject(membership)
    # The first decision of every request comes through here: plain attribute reads only
    # (``id`` rather than ``pk``, which goes through the model's meta).
    tenant = membership.tenant
    tenant_id, version = tenant.id, tenant.access_version
    if version < _latest.get(tenant_id, version):
        # A tenant object from before a change this process committed: its key would find
        # the set from before the change. The rows are the truth; nothing is cached under it.
        permset = membership.__dict__[MEMO_ATTR] = load(membership)
        return permset
    groups = membership.idp_groups
    key = (tenant_id, version, membership.id, membership.role, tuple(sorted(groups)) if groups else ())
    permset = _local.get(key)
    if permset is None:
        permset = load(membership)
        # Loaded inside the transaction that bumped this version: the rows may never commit,
        # and a rolled-back version number is reused by the next bump.
        if not _bumped_in_open_transaction(tenant_id):
            _local.put(key, permset)
    if permset.ends_at is not None:
        permset = permset.in_force(time.time())
    membership.__dict__[MEMO_ATTR] = permset
    return permset


def load_subject(subject: Subject) -> PermissionSet:
    """Build a ``Subject``'s permission set: its one role, then the grants to it and to that role (two queries)."""
    actions: dict[str, tuple[str, ...]] = {}
    objects: dict[str, dict[str, tuple[str, ...]]] = {}
    clearance: dict[str, int] = {}
    kind = subject.subject_type
    holders: dict[int, str] = {subject.group_id: f"direct grant to {kind}"}
    roles = Role.objects.filter(tenant_id=subject.tenant_id)
    if subject.role_key:
        roles = roles.filter(key=subject.role_key, builtin=True)
    else:
        roles = roles.filter(pk=subject.role_id or 0)
    role = roles.only("name", "permissions", "clearance", "group_id").first()
    base = BUILTIN_ROLES.get(subject.role_key) if subject.role_key else None
    if base is not None or role is not None:
        # A built-in role's permissions come from the catalog (like a membership role), a custom one's from its row.
        name = base.name if base is not None else role.name  # type: ignore[union-attr]
        via = f"role {name} ({kind} role)"
        permissions = base.permissions if base is not None else role.permissions  # type: ignore[union-attr]
        level = base.clearance if base is not None else role.clearance or DEFAULT_CLEARANCE  # type: ignore[union-attr]
        clearance[via] = classification_rank(level)
        for action in permissions:
            _add(actions, action, via)
        if role is not None:
            holders[role.group_id] = "grant to " + via
    rows = GroupObjectPermission.objects.filter(
        group_id__in=list(holders), permission__codename__in=list(CODENAME_ACTIONS)
    ).values_list("permission__codename", "object_pk", "group_id")
    for codename, object_pk, group_id in rows:
        _add(objects.setdefault(CODENAME_ACTIONS[codename], {}), object_pk, holders[group_id])
    return PermissionSet(actions=actions, objects=objects, clearance=clearance)


def for_subject(subject: Subject) -> PermissionSet:
    """A ``Subject``'s permission set: request memo, then process LRU (keyed like a membership's), then the database."""
    tenant = subject.tenant
    tenant_id, version = tenant.id, tenant.access_version
    if version < _latest.get(tenant_id, version):
        permset = subject.__dict__[MEMO_ATTR] = load_subject(subject)
        return permset
    key = (tenant_id, version, subject.subject_type, subject.id, subject.role_key, subject.role_id)
    permset = _local.get(key)
    if permset is None:
        permset = load_subject(subject)
        if not _bumped_in_open_transaction(tenant_id):
            _local.put(key, permset)
    subject.__dict__[MEMO_ATTR] = permset
    return permset


def forget(membership: Membership) -> None:
    """Drop the request memo (after a change made in this same request)."""
    membership.__dict__.pop(MEMO_ATTR, None)
