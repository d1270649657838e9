"""The break-glass workflow: policies, requests, approvals, the end of a time box.

Every rule is enforced here, not in forms: no self-approval, one approval per
person, the approver holds ``breakglass.approve`` (and is eligible under the
policy) *at decision time*, a pending request is dead after its pending
lifetime, durations never exceed the policy cap nor the platform ceiling
(``BREAKGLASS_MAX_DURATION_HOURS``). The grant is an ``access`` time-boxed
binding: ``authorize()`` refuses it from its ``expires_at`` on, whether or not
``elevations_expire`` (the beat task) ever runs; the task only tidies up,
audits and e-mails. Every step is audited with the elevation id in its data.
"""

from __future__ import annotations

import functools
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.access import services as access_services
from apps.access.decisions import can
from apps.access.escalation import AccessError, ensure_may_hand_out_role
from apps.access.models import Role
from apps.access.selectors import member_roles
from apps.audit.services import Actor, record
from apps.breakglass import limits
from apps.breakglass.models import Approval, Elevation, Policy
from apps.tenants.models import Membership, Tenant

# Roles carrying one of these need at least two approvers: they change who may do what.
TWO_PERSON_PERMISSIONS = frozenset({"role.manage", "member.manage", "sso.manage", "billing.manage"})
SWEEP_BATCH = 500

__all__ = [
    "BreakglassError",
    "elevation_approve",
    "elevation_deny",
    "elevation_end",
    "elevation_request",
    "elevations_expire",
    "policy_create",
    "policy_update",
]


class BreakglassError(ValueError):
    """A step the break-glass rules refuse; the message is meant for the user."""


def ceiling_minutes() -> int:
    """The platform-wide ceiling on any elevation's duration (setting, default 8 h)."""
    return int(float(getattr(settings, "BREAKGLASS_MAX_DURATION_HOURS", 8)) * 60)


def approvals_needed(role: Role, configured: int) -> int:
    """``configured`` approvals, but at least 2 while ``role`` carries a permission that changes who may do what.

    Asked at request time and again at decision time: the role may have been edited meanwhile.
    """
    return max(int(configured), 2 if TWO_PERSON_PERMISSIONS & set(role.permissions) else 1)


def _actor(membership: Membership | None) -> Actor:
    return Actor.system("break-glass") if membership is None else Actor.for_user(membership.user)


def _fresh(membership: Membership) -> Membership:
    """The membership as the database has it now (status, role, groups), with its tenant and user."""
    return Membership.objects.select_related("tenant", "user").get(pk=membership.pk)


# --- policies --------------------------------------------------------------


def _clean_policy(tenant: Tenant, role: Role, fields: dict[str, Any]) -> dict[str, Any]:
    if role.tenant_id != tenant.pk:
        raise BreakglassError("That role belongs to another tenant.")
    approvals = int(fields["approvals_required"])
    if not 1 <= approvals <= 3:
        raise BreakglassError("A policy needs between 1 and 3 approvals.")
    sensitive = sorted(TWO_PERSON_PERMISSIONS & set(role.permissions))
    if sensitive and approvals < 2:
        raise BreakglassError(f"Role {role.name} holds {', '.join(sensitive)}: it needs at least 2 approvals.")
    cap = int(fields["max_duration_minutes"])
    if not 1 <= cap <= ceiling_minutes():
        raise BreakglassError(f"The maximum duration must be between 1 minute and {ceiling_minutes() // 60} hours.")
    if int(fields.get("pending_minutes") or 0) < 1:
        raise BreakglassError("A request must be decidable for at least a minute.")
    if not str(fields.get("name", "")).strip():
        raise BreakglassError("Give the policy a name.")
    cleaned = dict(fields)
    for key in ("requester_roles", "requester_groups", "approver_roles", "approver_groups"):
        cleaned[key] = sorted({str(v).strip() for v in fields.get(key) or () if str(v).strip()})
    cleaned["name"] = str(fields["name"]).strip()
    if problem := limits.policy_problem(cleaned):
        raise BreakglassError(problem)
    return cleaned


def _ensure_policy_editor(actor: Membership, tenant: Tenant, role: Role) -> None:
    if not (can(actor, "breakglass.approve", tenant=tenant) and can(actor, "role.manage", tenant=tenant)):
        raise BreakglassError("Editing break-glass policies needs breakglass.approve and role.manage.")
    try:
        # A policy hands the role out: its editor must hold everything the role carries.
        ensure_may_hand_out_role(actor=actor, role=role)
    except AccessError as exc:
        raise BreakglassError(str(exc)) from exc


@transaction.atomic
def policy_create(
    *,
    tenant: Tenant,
    actor: Membership,
    name: str,
    role: Role,
    approvals_required: int,
    max_duration_minutes: int,
    pending_minutes: int = 60,
    incident_required: bool = False,
    requester_roles: list[str] | None = None,
    requester_groups: list[str] | None = None,
    approver_roles: list[str] | None = None,
    approver_groups: list[str] | None = None,
) -> Policy:
    """Create a policy in ``tenant``. Raises BreakglassError (rules, escalation, permissions)."""
    _ensure_policy_editor(actor, tenant, role)
    fields = _clean_policy(
        tenant,
        role,
        {
            "name": name,
            "approvals_required": approvals_required,
            "max_duration_minutes": max_duration_minutes,
            "pending_minutes": pending_minutes,
            "incident_required": incident_required,
            "requester_roles": requester_roles,
            "requester_groups": requester_groups,
            "approver_roles": approver_roles,
            "approver_groups": approver_groups,
        },
    )
    if Policy.objects.for_tenant(tenant).filter(name__iexact=fields["name"]).exists():
        raise BreakglassError("A policy with that name exists.")
    policy = Policy.objects.create(tenant=tenant, role=role, **fields)
    record(
        "breakglass.policy_create", tenant=tenant, actor=_actor(actor), target=policy, metadata=_policy_state(policy)
    )
    return policy


@transaction.atomic
def policy_update(*, policy: Policy, actor: Membership, **changes: Any) -> Policy:
    """Change a policy (any of policy_create's fields, and ``paused``). Raises BreakglassError."""
    locked = (
        Policy.objects.for_tenant(policy.tenant_id)
        .select_for_update()
        .select_related("tenant", "role")
        .get(pk=policy.pk)
    )
    before = _policy_state(locked)
    role = changes.pop("role", locked.role)
    _ensure_policy_editor(actor, locked.tenant, role)
    allowed = set(before) - {"role"}
    unknown = set(changes) - allowed
    if unknown:
        raise TypeError(f"unknown policy fields: {sorted(unknown)}")
    fields = _clean_policy(locked.tenant, role, {**{k: getattr(locked, k) for k in allowed}, **changes})
    for key, value in fields.items():
        setattr(locked, key, value)
    locked.role = role
    locked.save()
    record(
        "breakglass.policy_update",
        tenant=locked.tenant_id,
        actor=_actor(actor),
        target=locked,
        metadata={"before": before, "after": _policy_state(locked)},
    )
    return locked


def _policy_state(policy: Policy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "role": policy.role_id,
        "approvals_required": policy.approvals_required,
        "max_duration_minutes": policy.max_duration_minutes,
        "pending_minutes": policy.pending_minutes,
        "incident_required": policy.incident_required,
        "paused": policy.paused,
        "requester_roles": list(policy.requester_roles),
        "requester_groups": list(policy.requester_groups),
        "approver_roles": list(policy.approver_roles),
        "approver_groups": list(policy.approver_groups),
    }


# --- eligibility ------------------------------------------------------------


def _matches(membership: Membership, role_keys: list[str], groups: list[str]) -> bool:
    """``membership`` holds one of ``role_keys`` (base, assigned or through a group) or is in one of ``groups``."""
    if not role_keys and not groups:
        return True
    if set(groups) & set(membership.idp_groups or ()):
        return True
    if not role_keys:
        return False
    if membership.role in role_keys:
        return True
    held = member_roles(tenant=membership.tenant, membership=membership)
    return any(r.key in role_keys for r in held.assigned) or any(r.key in role_keys for _, r in held.via_groups)


def may_request(*, policy: Policy, membership: Membership) -> bool:
    """Whether ``membership`` may ask for ``policy`` now (permission and the policy's requester list)."""
    return (
        membership.tenant_id == policy.tenant_id
        and can(membership, "breakglass.request", tenant=policy.tenant)
        and _matches(membership, policy.requester_roles, policy.requester_groups)
    )


def may_approve(*, policy: Policy, membership: Membership) -> bool:
    """Whether ``membership`` may decide requests for ``policy`` now (permission and the approver list)."""
    return (
        membership.tenant_id == policy.tenant_id
        and can(membership, "breakglass.approve", tenant=policy.tenant)
        and _matches(membership, policy.approver_roles, policy.approver_groups)
    )


# --- requests ---------------------------------------------------------------


@transaction.atomic
def elevation_request(
    *,
    policy: Policy,
    requester: Membership,
    duration_minutes: int,
    justification: str,
    incident_ref: str = "",
) -> Elevation:
    """Ask for ``policy``'s role for ``duration_minutes``; approvers are e-mailed once this commits.

    Raises BreakglassError: paused policy, not eligible, duration over the
    cap, empty justification, missing incident reference, an open request
    for the same policy.
    """
    requester = _fresh(requester)
    policy = Policy.objects.for_tenant(requester.tenant_id).select_related("tenant", "role").get(pk=policy.pk)
    if policy.paused:
        raise BreakglassError("This policy is paused.")
    if not may_request(policy=policy, membership=requester):
        raise BreakglassError("You are not eligible to request this policy.")
    cap = min(policy.max_duration_minutes, ceiling_minutes())
    if not 1 <= int(duration_minutes) <= cap:
        raise BreakglassError(f"The duration must be between 1 and {cap} minutes.")
    justification = (justification or "").strip()
    if not justification:
        raise BreakglassError("Say why you need this access.")
    incident_ref = (incident_ref or "").strip()
    if problem := limits.request_problem(justification, incident_ref):
        raise BreakglassError(problem)
    if policy.incident_required and not incident_ref:
        raise BreakglassError("This policy needs an incident reference.")
    now = timezone.now()
    # Open by the clock: a time box that is over (or a request past its lifetime) no longer counts,
    # whether or not the beat task has marked it yet.
    open_ = Elevation.objects.for_tenant(policy.tenant_id).filter(
        Q(status=Elevation.Status.ACTIVE, expires_at__gt=now)
        | Q(status=Elevation.Status.PENDING, pending_until__gt=now),
        policy=policy,
        requester=requester,
    )
    if open_.exists():
        raise BreakglassError("You already have an open request or an active elevation for this policy.")
    elevation = Elevation.objects.create(
        tenant_id=policy.tenant_id,
        policy=policy,
        requester=requester,
        role=policy.role,
        duration_minutes=int(duration_minutes),
        justification=justification,
        incident_ref=incident_ref,
        approvals_required=approvals_needed(policy.role, policy.approvals_required),
        requester_email=requester.user.email,
        requested_at=now,
        pending_until=now + timedelta(minutes=policy.pending_minutes),
    )
    record(
        "breakglass.request",
        tenant=policy.tenant_id,
        actor=_actor(requester),
        target=elevation,
        metadata={
            "elevation": elevation.pk,
            "policy": policy.pk,
            "role": policy.role_id,
            "duration_minutes": elevation.duration_minutes,
            "incident": incident_ref or None,
        },
    )
    notify_on_commit(elevation_id=elevation.pk, event="requested")
    return elevation


def _lock(tenant: Tenant, elevation_id: int) -> Elevation:
    """The elevation row, locked for this transaction: concurrent decisions on it run one after another."""
    try:
        return (
            Elevation.objects.for_tenant(tenant)
            .select_for_update(of=("self",))
            .select_related("policy", "role", "requester__user")
            .get(pk=int(elevation_id))
        )
    except (Elevation.DoesNotExist, TypeError, ValueError) as exc:
        raise Elevation.DoesNotExist("no such elevation in this tenant") from exc


def _check_decider(elevation: Elevation, approver: Membership, now: datetime) -> None:
    if elevation.status != Elevation.Status.PENDING:
        raise BreakglassError(f"This request is no longer pending ({elevation.get_status_display().lower()}).")
    if now >= elevation.pending_until:
        raise BreakglassError("This request was not decided in time and can no longer be approved.")
    requester = elevation.requester
    if approver.pk == elevation.requester_id or (requester is not None and approver.user_id == requester.user_id):
        raise BreakglassError("You cannot decide your own request.")
    if not may_approve(policy=elevation.policy, membership=approver):
        raise BreakglassError("You may not approve requests for this policy (any more).")
    if Approval.objects.for_tenant(elevation.tenant_id).filter(elevation=elevation, approver=approver).exists():
        raise BreakglassError("You have already decided this request.")


def _decide(
    tenant: Tenant, elevation_id: int, approver: Membership, decision: str, comment: str
) -> tuple[Elevation, Membership, datetime]:
    """Lock the request, check the approver's right now, and record their decision (approve or deny)."""
    elevation = _lock(tenant, elevation_id)
    approver = _fresh(approver)
    now = timezone.now()
    _check_decider(elevation, approver, now)
    if decision == Approval.Decision.APPROVE:
        _check_policy_unchanged(elevation)
    Approval.objects.create(
        tenant_id=elevation.tenant_id,
        elevation=elevation,
        approver=approver,
        approver_email=approver.user.email,
        decision=decision,
        comment=(comment or "").strip()[:500],
        decided_at=now,
    )
    return elevation, approver, now


def _check_policy_unchanged(elevation: Elevation) -> None:
    """The policy as it is now must still hand out what was asked for (it may have changed while pending)."""
    policy = elevation.policy
    if policy.paused:
        raise BreakglassError("This policy was paused after the request: it can no longer be approved.")
    if policy.role_id != elevation.role_id:
        raise BreakglassError("The policy changed since this request (it grants another role now): ask again.")


def _needed(elevation: Elevation) -> int:
    """Approvals the request needs now: what it was asked with, the policy's current count, the role's rule."""
    return approvals_needed(elevation.role, max(elevation.approvals_required, elevation.policy.approvals_required))


@transaction.atomic
def elevation_approve(*, tenant: Tenant, elevation_id: int, approver: Membership, comment: str = "") -> Elevation:
    """Record ``approver``'s approval; the last one needed activates the elevation.

    The row lock orders concurrent approvals: each is recorded once, exactly
    one of them activates. Raises Elevation.DoesNotExist for an id outside
    ``tenant`` and BreakglassError for a refused decision.
    """
    elevation, approver, now = _decide(tenant, elevation_id, approver, Approval.Decision.APPROVE, comment)
    record(
        "breakglass.approve",
        tenant=elevation.tenant_id,
        actor=_actor(approver),
        target=elevation,
        metadata={"elevation": elevation.pk, "comment": comment or None},
    )
    approvals = list(
        Approval.objects.for_tenant(elevation.tenant_id)
        # An approval counts while its approver is still a member (a removed one's stays as history).
        .filter(elevation=elevation, decision=Approval.Decision.APPROVE, approver__isnull=False)
        .select_related("approver__user")
    )
    needed = _needed(elevation)
    if needed != elevation.approvals_required:
        elevation.approvals_required = needed
        elevation.save(update_fields=["approvals_required"])
    if len(approvals) >= needed:
        _activate(elevation, approvals, now)
    return elevation


def _activate(elevation: Elevation, approvals: list[Approval], now: datetime) -> None:
    # The cap as it is now: a policy (or the ceiling) lowered while the request waited still binds.
    elevation.duration_minutes = min(
        elevation.duration_minutes, elevation.policy.max_duration_minutes, ceiling_minutes()
    )
    expires_at = now + timedelta(minutes=elevation.duration_minutes)
    names = ", ".join(a.approver_address for a in approvals)
    reason = f"break-glass elevation #{elevation.pk}, approved by {names}, until {expires_at:%H:%M} UTC"
    try:
        binding = access_services.binding_timebox_create(
            role=elevation.role, membership=elevation.requester, expires_at=expires_at, reason=reason
        )
    except AccessError as exc:
        raise BreakglassError(str(exc)) from exc
    elevation.status = Elevation.Status.ACTIVE
    elevation.activated_at, elevation.expires_at, elevation.binding = now, expires_at, binding
    elevation.save(update_fields=["status", "activated_at", "expires_at", "binding", "duration_minutes"])
    record(
        "breakglass.activate",
        tenant=elevation.tenant_id,
        actor=Actor.system("break-glass"),
        target=elevation,
        metadata={
            "elevation": elevation.pk,
            "role": elevation.role_id,
            "member": elevation.requester_id,
            "approved_by": [a.approver_id for a in approvals],
            "duration_minutes": elevation.duration_minutes,
            "expires_at": expires_at.isoformat(),
        },
    )
    notify_on_commit(elevation_id=elevation.pk, event="activated")


@transaction.atomic
def elevation_deny(*, tenant: Tenant, elevation_id: int, approver: Membership, comment: str = "") -> Elevation:
    """Deny a pending request (one denial ends it). Same rules as approving; raises as elevation_approve."""
    elevation, approver, now = _decide(tenant, elevation_id, approver, Approval.Decision.DENY, comment)
    elevation.status, elevation.ended_at, elevation.ended_by = Elevation.Status.DENIED, now, approver
    elevation.save(update_fields=["status", "ended_at", "ended_by"])
    record(
        "breakglass.deny",
        tenant=elevation.tenant_id,
        actor=_actor(approver),
        target=elevation,
        metadata={"elevation": elevation.pk, "comment": comment or None},
    )
    notify_on_commit(elevation_id=elevation.pk, event="denied")
    return elevation


@transaction.atomic
def elevation_end(*, tenant: Tenant, elevation_id: int, actor: Membership) -> Elevation:
    """End an active elevation now: the requester, an approver of its policy, or a holder of member.manage.

    Raises Elevation.DoesNotExist outside ``tenant``, BreakglassError otherwise.
    """
    elevation = _lock(tenant, elevation_id)
    actor = _fresh(actor)
    if actor.tenant_id != elevation.tenant_id:
        raise Elevation.DoesNotExist("no such elevation in this tenant")
    allowed = (
        actor.pk == elevation.requester_id
        or can(actor, "member.manage", tenant=actor.tenant)
        or may_approve(policy=elevation.policy, membership=actor)
    )
    if not allowed:
        raise BreakglassError("Only the requester, an approver of this policy or a member manager can end it.")
    if elevation.status != Elevation.Status.ACTIVE:
        raise BreakglassError("This elevation is not active.")
    end_locked(elevation, actor=actor, now=timezone.now())
    return elevation


def end_locked(
    elevation: Elevation, *, actor: Membership | None, now: datetime, system: str = "break-glass", **why: Any
) -> str:
    """End an active, locked ``elevation`` at ``now``: binding ended, audited, e-mailed; returns its new status.

    ``actor`` None is the system named ``system`` (a webhook). ``why`` goes into the audit
    event's data (the incident that closed it). The caller holds the row lock and checked the right.
    """
    if elevation.binding_id is not None:
        access_services.binding_timebox_end(tenant_id=elevation.tenant_id, binding_id=elevation.binding_id)
    # Already past its time box (the worker has not run yet): it expired rather than ended.
    expired = elevation.expires_at is not None and elevation.expires_at <= now
    elevation.status = Elevation.Status.EXPIRED if expired else Elevation.Status.ENDED
    elevation.ended_at = elevation.expires_at if expired else now
    elevation.ended_by = None if expired else actor
    elevation.save(update_fields=["status", "ended_at", "ended_by"])
    record(
        "breakglass.expire" if expired else "breakglass.end",
        tenant=elevation.tenant_id,
        actor=_actor(actor) if actor is not None else Actor.system(system),
        target=elevation,
        metadata={"elevation": elevation.pk, **why},
    )
    notify_on_commit(elevation_id=elevation.pk, event="expired" if expired else "ended")
    return elevation.status


def elevations_expire(*, now: datetime | None = None) -> dict[str, int]:
    """The beat task's step: mark ended time boxes expired and stale requests lapsed; audit and e-mail each once.

    Safe to run twice at once: rows are claimed with ``SELECT … FOR UPDATE
    SKIP LOCKED`` and changed with an UPDATE that re-checks the status, so a
    row is claimed by exactly one run; a second run finds nothing. Access was
    already refused from ``expires_at`` on (``authorize()`` checks the
    clock); this only tidies up the binding, bumps the access version and notifies.
    """
    now = now or timezone.now()
    counts = {"expired": 0, "lapsed": 0}
    while True:
        with transaction.atomic():
            claimed = list(
                Elevation.objects.filter(status=Elevation.Status.ACTIVE, expires_at__lte=now)
                .select_for_update(skip_locked=True)
                .order_by("expires_at")
                .values_list("pk", "tenant_id", "binding_id")[:SWEEP_BATCH]
            )
            for pk, tenant_id, binding_id in claimed:
                # It ended when its time box did, not when this run noticed (the review window stops there).
                changed = Elevation.objects.filter(pk=pk, status=Elevation.Status.ACTIVE).update(
                    status=Elevation.Status.EXPIRED, ended_at=F("expires_at")
                )
                if not changed:
                    continue
                if binding_id is not None:
                    access_services.binding_timebox_end(tenant_id=tenant_id, binding_id=binding_id)
                record(
                    "breakglass.expire",
                    tenant=tenant_id,
                    actor=Actor.system("break-glass"),
                    target_type="elevation",
                    target_id=pk,
                    metadata={"elevation": pk},
                )
                notify_on_commit(elevation_id=pk, event="expired")
                counts["expired"] += 1
        if len(claimed) < SWEEP_BATCH:
            break
    with transaction.atomic():
        stale = list(
            Elevation.objects.filter(status=Elevation.Status.PENDING, pending_until__lte=now)
            .select_for_update(skip_locked=True)
            .values_list("pk", "tenant_id")[:SWEEP_BATCH]
        )
        for pk, tenant_id in stale:
            if Elevation.objects.filter(pk=pk, status=Elevation.Status.PENDING).update(
                status=Elevation.Status.LAPSED, ended_at=F("pending_until")
            ):
                record(
                    "breakglass.lapse",
                    tenant=tenant_id,
                    actor=Actor.system("break-glass"),
                    target_type="elevation",
                    target_id=pk,
                    metadata={"elevation": pk},
                )
                counts["lapsed"] += 1
    return counts


# --- notifications ------------------------------------------------------------

NOTICES = {
    "requested": "Break-glass request #{id} waits for your approval: {role} for {member}",
    "activated": "Break-glass elevation #{id} is active: {role} for {member} until {until}",
    "denied": "Break-glass request #{id} was denied",
    "ended": "Break-glass elevation #{id} ({role} for {member}) was ended early",
    "expired": "Break-glass elevation #{id} ({role} for {member}) has expired",
    "cancelled": "Break-glass request #{id} was cancelled: its incident was closed",
}


def _enqueue_now(elevation_id: int, event: str) -> None:
    # Lazy: the task module is a face importing this service; a service may enqueue its own
    # app's task from inside a function, once the transaction has committed.
    from apps.breakglass.tasks import notify_elevation

    notify_elevation.delay(elevation_id, event)


def notify_on_commit(*, elevation_id: int, event: str) -> None:
    """E-mail about ``event`` once the current transaction commits (nothing if it rolls back)."""
    if event not in NOTICES:
        raise ValueError(f"unknown break-glass notice: {event}")
    transaction.on_commit(functools.partial(_enqueue_now, elevation_id, event), robust=True)
