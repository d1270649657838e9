"""Reads for the break-glass console pages; every one takes the tenant and never crosses it."""

from __future__ import annotations

from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import Q
from django.utils import timezone

from apps.access.models import RoleBinding
from apps.breakglass.models import Elevation, Policy
from apps.breakglass.services import may_approve, may_request
from apps.tenants.models import Membership, Tenant

PG_BIGINT_MAX = 2**63 - 1


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
    return list(
        Elevation.objects.for_tenant(tenant)
        .filter(requester=membership)
        .select_related("policy", "role")
        .order_by("-requested_at", "-id")[:limit]
    )


def waiting_for(*, tenant: Tenant, membership: Membership) -> list[Elevation]:
    """Pending requests ``membership`` may decide now (not their own, not yet decided by them)."""
    pending = (
        Elevation.objects.for_tenant(tenant)
        .filter(status=Elevation.Status.PENDING)
        .exclude(requester=membership)
        .exclude(approvals__approver=membership)
        .select_related("policy", "role", "requester__user")
        .order_by("pending_until", "id")
    )
    return [e for e in pending if may_approve(policy=e.policy, membership=membership)]


def active_elevations(*, tenant: Tenant) -> list[Elevation]:
    """Elevations currently active in ``tenant`` (one query)."""
    return list(
        Elevation.objects.for_tenant(tenant)
        .filter(status=Elevation.Status.ACTIVE)
        .select_related("policy", "role", "requester__user")
        .order_by("expires_at", "id")
    )


def waiting_count(*, tenant: Tenant, membership: Membership) -> int:
    """How many pending requests ``membership`` may decide now: the nav badge, in one COUNT query.

    The same eligibility as ``waiting_for`` (the policy's approver roles and IdP groups, not
    their own, not yet decided by them), but done in SQL so the badge on every page costs one
    query: the member's role keys (base role, plus roles bound to them or to one of their groups
    and still in force) are an array subquery overlapped with the policy's approver roles.
    Requests past their pending lifetime are not counted: nobody can approve them any more (the
    application clock, as the services read it, not the database's).
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
        .filter(status=Elevation.Status.PENDING, pending_until__gt=timezone.now())
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
