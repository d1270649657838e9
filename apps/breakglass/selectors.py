"""Reads for the break-glass console pages; every one takes the tenant and never crosses it."""

from __future__ import annotations

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
