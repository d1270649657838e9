"""The decision point: ``authorize()``, ``can()`` and ``restrict()``, the only places that decide access.

- ``authorize(subject, action, resource)`` answers one question with a
  ``Decision`` that carries its reasons, and writes a denial to the decision
  log (an access attempt that was refused).
- ``can(subject, action, resource)`` is the same rule as a plain bool, never
  logged: what faces use to decide which links, buttons and nav entries to
  show. ``functools.partial(can, membership, tenant=tenant)`` is a request's
  ``can(action, resource=None)``.
- ``restrict(queryset, subject, action)`` is the list form: the queryset
  narrowed in SQL with the same rules, from the object ids the permission set
  already holds, so a list costs no query per row.

All three read the membership's permission set (``permsets.for_membership``),
memoised on the membership object for the rest of the request: however many
questions a page asks, the set is loaded (or taken from the process cache) once.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Model, Q, QuerySet

from apps.access import denial_log, permsets
from apps.access.models import DeniedDecision, RoleBinding
from apps.access.permissions import (
    ADMINISTRATIVE_PERMISSIONS,
    BUILTIN_ROLES,
    CLASSIFICATIONS,
    CLASSIFIED_ACTIONS,
    OBJECT_ACTIONS,
    READ_ONLY_ACTIONS,
    classification_rank,
    require_known,
)
from apps.access.subjects import Subject
from apps.core import context
from apps.tenants.models import Membership, Tenant

M = TypeVar("M", bound=Model)
# The plain value: comparing with the enum member looks it up through the enum's metaclass on
# every decision, which the first decision of a request pays again.
ACTIVE = Membership.Status.ACTIVE.value

# How far a permission without a resource must reach:
# - "tenant": held tenant-wide (from a role);
# - "any_object": held tenant-wide, or granted on at least one object of the tenant. A list page
#   declares this: it opens for a member whose only right is an object grant, and ``restrict``
#   then shows exactly the granted rows. Only meaningful for OBJECT_ACTIONS.
Scope = Literal["tenant", "any_object"]


@dataclass(frozen=True, slots=True)
class Decision:
    """An access decision with the reasons (the path) that led to it."""

    allowed: bool
    action: str
    reasons: tuple[str, ...] = ()  # a constant default: no default_factory call per decision

    def __bool__(self) -> bool:
        return self.allowed


def resource_label(resource: Any) -> tuple[str, str]:
    """``(model name, pk)`` of a resource, as reasons and the decision log name it."""
    if resource is None:
        return "", ""
    meta = getattr(resource, "_meta", None)
    return (meta.model_name if meta else type(resource).__name__.lower()), str(getattr(resource, "pk", ""))


def authorize(
    subject: Membership | Subject | None,
    action: str,
    resource: Any = None,
    *,
    tenant: Tenant | None = None,
    log_denial: bool = True,
    for_reading: bool = False,
    scope: Scope = "tenant",
) -> Decision:
    """May ``subject`` perform ``action`` (on ``resource``)?

    ``subject`` is a membership or another ``subjects.Subject`` (an API client);
    ``tenant`` is the tenant the request is about and defaults to the
    subject's. ``resource`` is a tenant-owned object or None; without one,
    ``scope`` says how far the permission must reach (see ``Scope``).

    Deny by default. Order: membership and tenant (a suspended tenant may
    only use READ_ONLY_ACTIONS, unless the caller only shows a page:
    ``for_reading``) → role permissions (membership role, assigned roles,
    IdP-group roles; dataset permissions only up to the role's clearance) →
    object grants (django-guardian, to the member or to one of its roles).
    Break-glass elevations are time-boxed role bindings: they count like an
    assigned role until their ``expires_at``, compared with the clock at each
    decision (``permsets.for_membership``), and the reasons name the
    elevation. Denials are written to the decision log unless ``log_denial``
    is False. Raises ValueError for an action that is not in the catalog.
    """
    decision, tenant_id = _decide(subject, action, resource, tenant=tenant, for_reading=for_reading, scope=scope)
    if not decision.allowed and log_denial and tenant_id is not None:
        _log_denial(subject, decision, resource, tenant_id)
    return decision


def can(
    subject: Membership | Subject | None,
    action: str,
    resource: Any = None,
    *,
    tenant: Tenant | None = None,
    for_reading: bool = False,
    scope: Scope = "tenant",
) -> bool:
    """``authorize()`` as a bool, never logged: which links, buttons and nav entries a face shows.

    The target view still enforces the permission itself. ``for_reading``
    asks "may they open the page" (true in a suspended tenant for what they
    may see), without it "may they do it" (a suspended tenant does nothing).
    """
    return _decide(subject, action, resource, tenant=tenant, for_reading=for_reading, scope=scope)[0].allowed


def _decide(
    subject: Membership | Subject | None,
    action: str,
    resource: Any,
    *,
    tenant: Tenant | None,
    for_reading: bool,
    scope: Scope,
) -> tuple[Decision, int | None]:
    require_known(action)
    tenant_id = tenant.id if tenant is not None else getattr(subject, "tenant_id", None)
    gate = _gate(subject, action, tenant_id, for_reading=for_reading)
    if gate:
        return Decision(False, action, (gate,)), tenant_id
    if resource is not None and getattr(resource, "tenant_id", None) != tenant_id:
        return Decision(False, action, ("resource belongs to another tenant",)), tenant_id
    permset = permsets.for_membership(subject)  # type: ignore[arg-type]  # _gate refused None
    sources = permset.actions.get(action)
    level = _classification(action, resource)
    if sources and level is None:
        return Decision(True, action, tuple(f"{source} grants {action} tenant-wide" for source in sources)), tenant_id
    kind, ident = resource_label(resource)
    uncleared = ""
    if sources and level is not None:
        # Restricted-data rule: a role-wide permission reaches only as far as the role's clearance.
        covering = permset.sources_covering(action, classification_rank(level))
        if covering:
            reasons = tuple(
                f"{source} grants {action} tenant-wide, cleared for {level} datasets ({kind} {ident} is {level})"
                for source in covering
            )
            return Decision(True, action, reasons), tenant_id
        uncleared = (
            f"{kind} {ident} is {level}: the role-wide {action} of "
            f"{', '.join(sources)} covers only datasets up to "
            f"{rank_label(permset.clearance_for(action))}; {level} datasets need an explicit grant"
        )
    granted_objects = permset.objects.get(action, {}) if action in OBJECT_ACTIONS else {}
    if resource is not None and action in OBJECT_ACTIONS:
        granted = granted_objects.get(str(resource.pk))
        if granted:
            note = " (explicit grant: the rule for datasets above a role's clearance)" if uncleared else ""
            reasons = tuple(f"{source}: {action} on {kind} {ident}{note}" for source in granted)
            return Decision(True, action, reasons), tenant_id
        reason = uncleared or f"no role grants {action} and no grant on {kind} {ident}"
    elif resource is None and scope == "any_object" and granted_objects:
        holders = sorted({source for sources_of in granted_objects.values() for source in sources_of})
        count = len(granted_objects)
        reasons = tuple(f"{holder}: {action} on {count} object(s), not tenant-wide" for holder in holders)
        return Decision(True, action, reasons), tenant_id
    else:
        reason = uncleared or f"no role grants {action}"
    return Decision(False, action, (reason,)), tenant_id


def _gate(subject: Membership | Subject | None, action: str, tenant_id: int | None, *, for_reading: bool) -> str:
    """Why ``subject`` cannot act in the tenant at all (before any permission is looked at); "" if it can."""
    if subject is None or subject.tenant_id != tenant_id:
        return "not a member of this tenant"
    if subject.status != ACTIVE:
        return f"{'membership' if type(subject) is Membership else subject.subject_type} is {subject.status}"
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


def rank_label(rank: int) -> str:
    """The classification a clearance rank stands for ("nothing" below public)."""
    return CLASSIFICATIONS[rank] if 0 <= rank < len(CLASSIFICATIONS) else "nothing"


def _log_denial(subject: Membership | Subject | None, decision: Decision, resource: Any, tenant_id: int) -> None:
    kind, ident = resource_label(resource)
    if subject is not None and type(subject) is not Membership:  # a ``subjects.Subject`` (an API client)
        subject_type, display = subject.subject_type, subject.subject_label
    else:
        # Only use the user if it is already loaded: a denial must not cost an extra query.
        user = subject.user if subject is not None and Membership.user.is_cached(subject) else None
        subject_type, display = "member", getattr(user, "email", "") or context.current().user_display
    row = DeniedDecision(
        tenant_id=tenant_id,
        subject_type=subject_type,
        subject_id=str(subject.pk) if subject is not None else "",
        subject_display=display,
        action=decision.action,
        resource_type=kind,
        resource_id=ident,
        reasons=list(decision.reasons),
        request_id=context.current().request_id,
    )
    if connection.in_atomic_block:
        row.save(force_insert=True)  # part of the caller's transaction: its commit decides
        return
    denial_log.write(row)  # on its own (a runtime API call, a page read): off the request path


# --- lists -----------------------------------------------------------------


def restrict(
    queryset: QuerySet[M], subject: Membership | Subject | None, *actions: str, tenant: Tenant | None = None
) -> QuerySet[M]:
    """``queryset`` narrowed in SQL to the rows ``subject`` may perform any of ``actions`` on.

    The list form of ``authorize()``, with the same rules and no query beyond
    loading the permission set: a tenant-wide permission covers every row of
    the tenant, except that a dataset permission covers datasets only up to
    the role's clearance; object grants add their rows (``pk IN`` the ids the
    permission set holds). ``tenant`` defaults to the subject's. Lists are
    reads, so a suspended tenant's lists stay readable. Nothing is written to
    the decision log; a subject with no right gets an empty queryset.
    """
    tenant_id = tenant.pk if tenant is not None else getattr(subject, "tenant_id", None)
    meta = queryset.model._meta
    clauses: list[Q] = []
    for action in actions:
        require_known(action)
        if _gate(subject, action, tenant_id, for_reading=True):
            continue
        permset = permsets.for_membership(subject)  # type: ignore[arg-type]  # _gate refused None
        grantable = action in OBJECT_ACTIONS and OBJECT_ACTIONS[action][:2] == (meta.app_label, meta.model_name)
        if action in permset.actions:
            if not (action in CLASSIFIED_ACTIONS and grantable):
                return queryset.filter(tenant_id=tenant_id)
            clauses.append(Q(classification__in=list(CLASSIFICATIONS[: permset.clearance_for(action) + 1])))
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
        return queryset.none()
    return queryset.filter(functools.reduce(operator.or_, clauses), tenant_id=tenant_id)


# --- what a subject holds ----------------------------------------------------


def held_permissions(subject: Membership | Subject | None, *, tenant: Tenant | None = None) -> frozenset[str]:
    """The catalog permissions ``subject`` holds tenant-wide in ``tenant`` (default: its own).

    Object grants are not included. Empty for a membership that is not active
    or belongs to another tenant. From the memoised permission set: no query
    after the request's first decision, nothing logged.
    """
    if subject is None or subject.status != Membership.Status.ACTIVE:
        return frozenset()
    if tenant is not None and subject.tenant_id != tenant.pk:
        return frozenset()
    return frozenset(permsets.for_membership(subject).actions)


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
    admin_bindings = RoleBinding.objects.filter(
        match, role__permissions__overlap=sorted(ADMINISTRATIVE_PERMISSIONS)
    ).current()
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
