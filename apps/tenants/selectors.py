"""Named reads for tenants and memberships.

Every read of memberships goes through ``Membership.objects.for_tenant``; a
membership id from the URL is only ever looked up inside the request's tenant.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Q, QuerySet

from apps.tenants.models import SLUG_PATTERN, Membership, MembershipRemoval, Tenant

_SLUG_RE = re.compile(rf"^{SLUG_PATTERN}$")
# Ids come from URLs; a number PostgreSQL's bigint cannot hold is simply "no such row".
MAX_ID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class MemberCounts:
    """How many memberships of a tenant are in each status."""

    active: int = 0
    invited: int = 0
    disabled: int = 0

    @property
    def total(self) -> int:
        return self.active + self.invited + self.disabled


def slug_is_wellformed(slug: str) -> bool:
    """True if ``slug`` could name a tenant (cheap check before touching the database)."""
    return bool(_SLUG_RE.match(slug))


def membership_for_console(*, user: Any, slug: str) -> Membership | None:
    """The user's active membership in the tenant named by ``slug``, with the tenant.

    One query. ``None`` for a malformed or unknown slug and for non-members
    alike, so callers answer 404 without revealing which it was.
    """
    if not user.is_authenticated or not _SLUG_RE.match(slug):
        return None
    return (
        Membership.objects.select_related("tenant")
        .filter(tenant__slug=slug, user=user, status=Membership.Status.ACTIVE)
        .first()
    )


def tenants_for_user(*, user: Any) -> QuerySet[Tenant]:
    """Tenants the user is an active member of (the tenant switcher)."""
    if not user.is_authenticated:
        return Tenant.objects.none()
    return Tenant.objects.for_user(user).order_by("name")


def tenant_list_with_counts(*, search: str = "", status: str = "") -> QuerySet[Tenant]:
    """Platform list: every tenant with its active and invited member counts, in one query.

    ``search`` matches name or slug (case-insensitive); ``status`` is a
    ``Tenant.Status`` value or empty for all. Ordered by name, then id.
    """
    qs = Tenant.objects.annotate(
        member_count=Count("memberships", filter=Q(memberships__status=Membership.Status.ACTIVE)),
        invited_count=Count("memberships", filter=Q(memberships__status=Membership.Status.INVITED)),
    )
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(slug__icontains=search))
    if status:
        qs = qs.filter(status=status)
    return qs.order_by("name", "pk")


def tenant_get(*, slug: str) -> Tenant | None:
    """The tenant with ``slug``, or ``None`` for a malformed or unknown slug (platform use only)."""
    if not _SLUG_RE.match(slug):
        return None
    return Tenant.objects.filter(slug=slug).first()


def member_list(*, tenant: Tenant, status: str = "", role: str = "", search: str = "") -> QuerySet[Membership]:
    """Memberships of ``tenant`` with their users, ordered by e-mail.

    Optional filters: ``status`` and ``role`` (model choice values) and
    ``search`` (part of the e-mail address or name). The user is joined, so a
    page of rows costs one query whatever its size.
    """
    qs = Membership.objects.for_tenant(tenant).select_related("user", "invited_by")
    if status:
        qs = qs.filter(status=status)
    if role:
        qs = qs.filter(role=role)
    if search:
        qs = qs.filter(Q(user__email__icontains=search) | Q(user__full_name__icontains=search))
    return qs.order_by("user__email", "pk")


def member_counts(*, tenant: Tenant) -> MemberCounts:
    """Counts of the tenant's memberships by status, in one aggregate query."""
    counts = Membership.objects.for_tenant(tenant).aggregate(
        active=Count("pk", filter=Q(status=Membership.Status.ACTIVE)),
        invited=Count("pk", filter=Q(status=Membership.Status.INVITED)),
        disabled=Count("pk", filter=Q(status=Membership.Status.DISABLED)),
    )
    return MemberCounts(**counts)


def membership_get(*, tenant: Tenant, membership_id: int) -> Membership | None:
    """One membership of ``tenant`` by id, with its user; ``None`` if it belongs to another tenant or none."""
    if not 0 < membership_id <= MAX_ID:
        return None
    return (
        Membership.objects.for_tenant(tenant).select_related("user", "tenant", "invited_by").filter(pk=membership_id)
    ).first()


def membership_for_invitation_email(*, membership_id: int) -> Membership | None:
    """The membership an invitation e-mail is about, if it is still an open invitation.

    Used by the e-mail task: a membership removed, accepted or disabled since
    the task was queued gets no e-mail.
    """
    return (
        Membership.objects.select_related("tenant", "user", "invited_by")
        .filter(pk=membership_id, status=Membership.Status.INVITED)
        .first()
    )


def recent_audit_events(*, tenant: Tenant, limit: int = 5) -> list[Any]:
    """The tenant's latest audit events, newest first (dashboard widget).

    Prefers the audit app's own selector; until it exists, reads the events
    through the audit queryset's ``for_tenant`` so the tenant scope still holds.
    The caller must have checked ``audit.read``.
    """
    try:
        from apps.audit.selectors import recent_events  # type: ignore[import-not-found]
    except ImportError:
        from apps.audit.models import AuditEvent

        return list(AuditEvent.objects.for_tenant(tenant).order_by("-occurred_at", "-id")[:limit])
    return list(recent_events(tenant=tenant, limit=limit))


def membership_was_removed(*, tenant: Tenant, user: Any) -> bool:
    """Whether an administrator removed ``user`` from ``tenant`` and has not invited them again."""
    return MembershipRemoval.objects.for_tenant(tenant).filter(user_id=user.pk).exists()


def membership_for_decision(*, tenant: Tenant, user_id: int | None = None, email: str = "") -> Membership | None:
    """The membership of ``tenant`` of the user with ``user_id`` or ``email``, any status, with tenant and user.

    For a decision about that member (the runtime API's ``/authorize``): the
    status is left to ``access`` to judge, so a disabled member is denied with
    its reason. One query; ``None`` when the user is not in this tenant, the
    same answer whether or not they exist elsewhere.
    """
    if user_id is not None:
        if not 0 < user_id <= MAX_ID:
            return None
        match = Q(user_id=user_id)
    elif email:
        match = Q(user__email__iexact=email)
    else:
        return None
    return Membership.objects.for_tenant(tenant).select_related("tenant", "user").filter(match).first()
