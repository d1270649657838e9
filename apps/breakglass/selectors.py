"""Reads for the break-glass console pages; every one takes the tenant and never crosses it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import Count, Min, Prefetch, Q
from django.db.models.functions import Upper
from django.utils import timezone

from apps.access.models import RoleBinding
from apps.audit.models import AuditEvent
from apps.breakglass.models import Approval, Elevation, IncidentClosure, IncidentWebhook, Policy
from apps.breakglass.services import may_approve, may_request
from apps.core.pagination import Page, keyset_page, within
from apps.tenants.models import Membership, Tenant

PG_BIGINT_MAX = 2**63 - 1


def open_now(now: datetime | None = None) -> Q:
    """Rows still open at ``now``: active within their time box, pending within their lifetime.

    The status column lags by up to a minute (the beat task marks the rest); the clock does not.
    """
    now = now or timezone.now()
    return Q(status=Elevation.Status.ACTIVE, expires_at__gt=now) | Q(
        status=Elevation.Status.PENDING, pending_until__gt=now
    )


def _settled(rows: list[Elevation]) -> list[Elevation]:
    now = timezone.now()
    return [row.settle(now) for row in rows]


def _valid_id(value: int) -> bool:
    return 0 < int(value) <= PG_BIGINT_MAX


def policy_list(*, tenant: Tenant) -> list[Policy]:
    """Every policy of ``tenant`` with its role, by name (one query)."""
    return list(Policy.objects.for_tenant(tenant).select_related("role").order_by("name"))


def policy_get(*, tenant: Tenant, policy_id: int) -> Policy | None:
    """One policy of ``tenant``; None for any other id."""
    if not _valid_id(policy_id):
        return None
    return Policy.objects.for_tenant(tenant).select_related("tenant", "role").filter(pk=policy_id).first()


def requestable_policies(*, tenant: Tenant, membership: Membership) -> list[Policy]:
    """Policies ``membership`` may ask for now (not paused, eligible)."""
    return [p for p in policy_list(tenant=tenant) if not p.paused and may_request(policy=p, membership=membership)]


def elevation_get(*, tenant: Tenant, elevation_id: int) -> Elevation | None:
    """One elevation of ``tenant``; None for any other id (another tenant's id looks like a missing one)."""
    if not _valid_id(elevation_id):
        return None
    return (
        Elevation.objects.for_tenant(tenant)
        .select_related("policy", "role", "requester__user")
        .filter(pk=elevation_id)
        .first()
    )


def my_elevations(*, tenant: Tenant, membership: Membership, limit: int = 50) -> list[Elevation]:
    """The member's own requests and elevations, newest first (one query)."""
    return _settled(
        list(
            Elevation.objects.for_tenant(tenant)
            .filter(requester=membership)
            .select_related("policy", "role")
            .order_by("-requested_at", "-id")[:limit]
        )
    )


def waiting_for(*, tenant: Tenant, membership: Membership) -> list[Elevation]:
    """Pending requests ``membership`` may decide now (not their own, not yet decided by them)."""
    pending = (
        Elevation.objects.for_tenant(tenant)
        .filter(status=Elevation.Status.PENDING, pending_until__gt=timezone.now())
        .exclude(requester=membership)
        .exclude(approvals__approver=membership)
        .select_related("policy", "role", "requester__user")
        .order_by("pending_until", "id")
    )
    return [e for e in pending if may_approve(policy=e.policy, membership=membership)]


def active_elevations(*, tenant: Tenant, limit: int | None = None) -> list[Elevation]:
    """Elevations currently active in ``tenant``, soonest end first (one query; the first ``limit``)."""
    qs = (
        Elevation.objects.for_tenant(tenant)
        .filter(status=Elevation.Status.ACTIVE, expires_at__gt=timezone.now())
        .select_related("policy", "role", "requester__user")
        .order_by("expires_at", "id")
    )
    return list(qs[:limit] if limit else qs)


def waiting_count(*, tenant: Tenant, membership: Membership) -> int:
    """How many pending requests ``membership`` may decide now: the nav badge, in one COUNT query.

    The same eligibility as ``waiting_for`` (the policy's approver roles and IdP groups, not
    their own, not yet decided by them), but done in SQL so the badge on every page costs one
    query: the member's role keys (base role, plus roles bound to them or to one of their groups
    and still in force) are an array subquery overlapped with the policy's approver roles.
    Requests past their pending lifetime, and requests of a policy paused since, are not counted:
    nobody can approve them any more (the application clock, as the services read it, not the
    database's); the approvals page still lists them, so they can be denied.
    The caller asks first whether the member holds ``breakglass.approve`` (no query from the
    request's permission set), as the service does again at decision time.
    """
    groups = list(membership.idp_groups or ())
    bound = Q(membership=membership)
    if groups:
        bound |= Q(membership__isnull=True, idp_group__in=groups)
    held_keys = ArraySubquery(
        RoleBinding.objects.for_tenant(tenant).current().filter(bound).values("role__key").order_by()
    )
    open_to_all = Q(policy__approver_roles__len=0, policy__approver_groups__len=0)
    eligible = (
        open_to_all
        | Q(policy__approver_roles__contains=[membership.role])
        | Q(policy__approver_roles__overlap=held_keys)
    )
    if groups:
        eligible |= Q(policy__approver_groups__overlap=groups)
    return (
        Elevation.objects.for_tenant(tenant)
        .filter(status=Elevation.Status.PENDING, pending_until__gt=timezone.now(), policy__paused=False)
        .exclude(requester=membership)
        .exclude(approvals__approver=membership)
        .filter(eligible)
        .count()
    )


def active_for(*, tenant: Tenant, membership: Membership) -> list[Elevation]:
    """The member's own elevations in force now, soonest end first (one query): the banner's rows."""
    return list(
        Elevation.objects.for_tenant(tenant)
        .filter(requester=membership, status=Elevation.Status.ACTIVE, expires_at__gt=timezone.now())
        .select_related("role")
        .order_by("expires_at", "id")
    )


# --- review (#11, item 7) and incidents (item 5) ------------------------------------------------

HISTORY = ("denied", "lapsed", "ended", "expired", "cancelled")


@dataclass(frozen=True, slots=True)
class ElevationFilters:
    """Cleaned filters of the elevations page (``forms.ElevationFilterForm``).

    ``status`` is one status, "history" (every finished one) or empty; ``person`` an e-mail
    (case-insensitive, exact); ``requested_from`` inclusive and ``requested_before`` exclusive.
    """

    status: str = ""
    person: str = ""
    policy_id: int | None = None
    requested_from: datetime | None = None
    requested_before: datetime | None = None


def elevation_page(*, tenant: Tenant, filters: ElevationFilters, cursor: str | None, size: int) -> Page:
    """One page of ``tenant``'s elevations, newest request first (one query, keyset on requested_at, id).

    Raises apps.core.pagination.InvalidCursorError for a cursor this server did not issue.
    """
    qs = Elevation.objects.for_tenant(tenant).select_related("policy", "role", "requester__user", "ended_by__user")
    # By the status the rows have now (``Elevation.settle``): a time box over is expired, not active.
    now = timezone.now()
    over = Q(status=Elevation.Status.ACTIVE, expires_at__lte=now)
    stale = Q(status=Elevation.Status.PENDING, pending_until__lte=now)
    if filters.status == "history":
        qs = qs.filter(Q(status__in=HISTORY) | over | stale)
    elif filters.status in ("active", "pending"):
        qs = qs.filter(open_now(now), status=filters.status)
    elif filters.status == "expired":
        qs = qs.filter(Q(status=filters.status) | over)
    elif filters.status == "lapsed":
        qs = qs.filter(Q(status=filters.status) | stale)
    elif filters.status:
        qs = qs.filter(status=filters.status)
    if filters.person:
        qs = qs.filter(requester_email__iexact=filters.person)
    if filters.policy_id:
        qs = qs.filter(policy_id=filters.policy_id)
    qs = within(qs, start=filters.requested_from, end=filters.requested_before, field="requested_at")
    page = keyset_page(qs, cursor=cursor, size=size, time_field="requested_at")
    for row in page.rows:
        row.settle(now)
    return page


def elevation_detail(*, tenant: Tenant, elevation_id: int) -> Elevation | None:
    """One elevation of ``tenant`` with its approvals (two queries); None for any other id."""
    if not _valid_id(elevation_id):
        return None
    elevation = (
        Elevation.objects.for_tenant(tenant)
        .select_related("policy", "role", "requester__user", "ended_by__user")
        .prefetch_related(Prefetch("approvals", queryset=Approval.objects.select_related("approver__user")))
        .filter(pk=elevation_id)
        .first()
    )
    return elevation.settle(timezone.now()) if elevation is not None else None


END_ACTIONS = ("breakglass.end", "breakglass.cancel")


def end_cause(*, tenant: Tenant, elevation: Elevation) -> str:
    """Why a system end happened (no person ended it): the incident closed, or the member left. One query.

    Read from the audit event that ended it, so the timeline says what the audit log says.
    """
    if elevation.ended_by_id is not None or elevation.status not in ("ended", "cancelled"):
        return ""
    event = (
        AuditEvent.objects.for_tenant(tenant)
        .filter(action__in=END_ACTIONS, metadata__elevation=elevation.pk)
        .order_by("-id")
        .only("metadata")
        .first()
    )
    data = event.metadata if event is not None else {}
    if data.get("incident"):
        via = "the incident webhook" if data.get("source") in ("generic", "pagerduty") else "the console"
        return f"incident {data['incident']} closed by {via}"
    if data.get("reason"):
        return str(data["reason"])
    return "the system"


def elevation_window(elevation: Elevation) -> tuple[datetime, datetime] | None:
    """The time the elevation was in force, [activated_at, end); None if it never was.

    The end is when it ended, else its time box's end, but never later than now: an
    active elevation's window grows as time passes.
    """
    if elevation.activated_at is None:
        return None
    # Never past the time box (rows swept before the sweep stored expires_at kept the sweep's time).
    end = min(t for t in (elevation.ended_at, elevation.expires_at) if t is not None)
    return elevation.activated_at, min(end, max(timezone.now(), elevation.activated_at))


def elevation_counts(*, tenant: Tenant) -> dict[str, int]:
    """Active and pending elevations of ``tenant`` (one query): the dashboard card's numbers."""
    rows = Elevation.objects.for_tenant(tenant).filter(open_now()).values("status").annotate(n=Count("id")).order_by()
    counts = {"active": 0, "pending": 0}
    counts.update({row["status"]: row["n"] for row in rows})
    return counts


def open_incidents(*, tenant: Tenant, limit: int = 50) -> list[dict[str, object]]:
    """Incident references named by pending or active elevations, with counts (one query)."""
    rows = (
        Elevation.objects.for_tenant(tenant)
        .filter(open_now())
        .exclude(incident_ref="")
        .annotate(ref=Upper("incident_ref"))
        .values("ref")
        .annotate(
            active=Count("id", filter=Q(status=Elevation.Status.ACTIVE)),
            pending=Count("id", filter=Q(status=Elevation.Status.PENDING)),
            label=Min("incident_ref"),
        )
        .order_by("ref")[:limit]
    )
    return list(rows)


def incident_closures(*, tenant: Tenant, limit: int = 20) -> list[IncidentClosure]:
    """The latest incident closures of ``tenant`` (one query)."""
    return list(IncidentClosure.objects.for_tenant(tenant).select_related("closed_by__user")[:limit])


def incident_webhook(*, tenant: Tenant) -> IncidentWebhook | None:
    """``tenant``'s incident webhook, if enabled (its secrets stay encrypted; never render them)."""
    return IncidentWebhook.objects.for_tenant(tenant).first()
