"""Named reads of provider credentials (tenant-scoped; the caller checked ``key.manage``).

``credentials_due(tenant, start, end)`` is the public read other apps use (the
quarterly runbook lists what is due in its quarter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.keys.models import DUE_SOON_DAYS, Credential, CredentialRotation, CredentialSettings, RotationReminder
from apps.tenants.models import Tenant


@dataclass(frozen=True, slots=True)
class CredentialFilters:
    """What the list page may filter on (all optional; indexed columns or a small tenant's rows)."""

    provider: str = ""
    environment: str = ""
    state: str = ""  # "", "overdue", "due_soon", "ok"
    query: str = ""


def today() -> date:
    return timezone.now().date()


def credential_list(*, tenant: Tenant, filters: CredentialFilters | None = None) -> QuerySet[Credential]:
    """The tenant's credentials, soonest due first, owner and owner's user joined (no query per row)."""
    qs = Credential.objects.for_tenant(tenant).select_related("owner__user").order_by("next_due_on", "name", "pk")
    if filters is None:
        return qs
    if filters.provider:
        qs = qs.filter(provider=filters.provider)
    if filters.environment:
        qs = qs.filter(environment=filters.environment)
    if filters.query:
        qs = qs.filter(Q(name__icontains=filters.query) | Q(purpose__icontains=filters.query))
    now = today()
    if filters.state == "overdue":
        qs = qs.filter(next_due_on__lt=now)
    elif filters.state == "due_soon":
        qs = qs.filter(next_due_on__gte=now, next_due_on__lte=now + timedelta(days=DUE_SOON_DAYS))
    elif filters.state == "ok":
        qs = qs.filter(next_due_on__gt=now + timedelta(days=DUE_SOON_DAYS))
    return qs


def credential_get(*, tenant: Tenant, pk: int) -> Credential | None:
    """One credential of ``tenant``; None for an unknown id or another tenant's (404 alike)."""
    if not 0 < pk < 2**63:
        return None
    return credential_list(tenant=tenant).select_related("tenant").filter(pk=pk).first()


def credentials_due(*, tenant: Tenant, start: date, end: date) -> QuerySet[Credential]:
    """Credentials of ``tenant`` due in ``[start, end)``, plus every one already overdue before ``start``.

    What the quarterly runbook lists under "rotate": ``start``/``end`` are the
    quarter's first day and the next quarter's first day. Overdue ones are
    included because a credential missed last quarter is still to rotate.
    Ordered by due date; owner and owner's user joined.
    """
    return credential_list(tenant=tenant).filter(next_due_on__lt=end)


def credentials_overdue_and_soon(*, tenant: Tenant, within_days: int = DUE_SOON_DAYS) -> QuerySet[Credential]:
    """What the "Due and overdue" page lists: due within ``within_days`` days or overdue, soonest first."""
    return credential_list(tenant=tenant).filter(next_due_on__lte=today() + timedelta(days=within_days))


def due_counts(*, tenant: Tenant, within_days: int = DUE_SOON_DAYS) -> tuple[int, int]:
    """(overdue, due within ``within_days``) for the dashboard card: one indexed query."""
    now = today()
    rows = list(
        Credential.objects.for_tenant(tenant)
        .filter(next_due_on__lte=now + timedelta(days=within_days))
        .values_list("next_due_on", flat=True)
    )
    overdue = sum(1 for due in rows if due < now)
    return overdue, len(rows) - overdue


def rotation_list(*, credential: Credential, limit: int = 50) -> list[CredentialRotation]:
    """The credential's latest rotations, newest first, with who did them."""
    return list(
        CredentialRotation.objects.for_tenant(credential.tenant_id)
        .filter(credential=credential)
        .select_related("rotated_by")
        .order_by("-rotated_at", "-id")[:limit]
    )


def credential_settings_of(*, tenant: Tenant) -> CredentialSettings:
    """The tenant's credential settings (an unsaved row with the defaults when it has none)."""
    return CredentialSettings.objects.for_tenant(tenant).first() or CredentialSettings(tenant=tenant)


def reminder_list(*, tenant: Tenant, credential: Credential | None = None, limit: int = 20) -> list[RotationReminder]:
    """The tenant's latest reminders (of one credential when given), newest first."""
    qs = RotationReminder.objects.for_tenant(tenant)
    if credential is not None:
        qs = qs.filter(credential=credential)
    return list(qs.order_by("-created_at", "-id")[:limit])


def providers_in_use(*, tenant: Tenant) -> list[str]:
    """The providers the tenant's credentials name (for the list filter)."""
    return list(
        Credential.objects.for_tenant(tenant).order_by("provider").values_list("provider", flat=True).distinct()
    )
