"""Named reads of the keys app for the console (tenant-scoped; the caller checked ``apiclient.manage``)."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters, event_list
from apps.core.pagination import Page
from apps.keys.models import MAX_TOKEN_LIFETIME, ApiClient, ClientSecret, SigningKey, TokenPolicy, TokenUse
from apps.tenants.models import Tenant

ACTIVITY_HOURS = 48
FAILURES_PAGE_SIZE = 50


def apiclient_list(*, tenant: Tenant) -> QuerySet[ApiClient]:
    """The tenant's clients by name, with their custom role and creator joined (no query per row)."""
    return ApiClient.objects.for_tenant(tenant).select_related("role", "created_by").order_by("name", "pk")


def apiclient_get(*, tenant: Tenant, pk: int) -> ApiClient | None:
    """One client of ``tenant``; None for an unknown id or another tenant's (404 alike)."""
    if not 0 < pk < 2**63:
        return None
    return apiclient_list(tenant=tenant).select_related("tenant").filter(pk=pk).first()


def secret_list(*, client: ApiClient) -> QuerySet[ClientSecret]:
    """The client's secrets, newest first (digests are never shown; the hint tells them apart)."""
    return ClientSecret.objects.for_tenant(client.tenant_id).filter(client=client).order_by("-created_at", "-id")


def secret_get(*, client: ApiClient, pk: int) -> ClientSecret | None:
    if not 0 < pk < 2**63:
        return None
    return secret_list(client=client).filter(pk=pk).first()


def token_lifetime_of(*, tenant: Tenant) -> int:
    value = TokenPolicy.objects.for_tenant(tenant).values_list("token_lifetime", flat=True).first()
    return value or MAX_TOKEN_LIFETIME


def token_policy_of(*, tenant: Tenant) -> TokenPolicy:
    """The tenant's token policy (an unsaved one with the defaults when it has none)."""
    return TokenPolicy.objects.for_tenant(tenant).first() or TokenPolicy(tenant=tenant)


def token_use_hourly(*, client: ApiClient, hours: int = ACTIVITY_HOURS) -> list[TokenUse]:
    """The client's hourly use rows of the last ``hours`` hours, newest first (as flushed; the last minute may lag)."""
    since = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours - 1)
    return list(
        TokenUse.objects.for_tenant(client.tenant_id)
        .filter(client=client, hour__gte=since)
        .order_by("-hour", "audience")
    )


def client_failures(*, client: ApiClient, cursor: str | None, size: int = FAILURES_PAGE_SIZE) -> Page:
    """One page (newest first) of the client's individually recorded failures on its tenant's audit chain.

    Failed client authentications (``apiclient.auth_failed``) and refused
    tokens (``apiclient.token_rejected``) whose signature named this client.
    Refusals of tokens no key verified are on the platform chain: nobody can
    say which client they were. Raises InvalidCursorError for a bad cursor.
    """
    filters = AuditFilters(
        action="apiclient.",
        result=AuditEvent.Result.FAILURE,
        target_type="api_client",
        target_id=client.client_id,
    )
    return event_list(tenant=client.tenant, filters=filters, cursor=cursor, size=size)


def signing_key_list() -> QuerySet[SigningKey]:
    """Every signing key, newest first, without the encrypted private halves."""
    return SigningKey.objects.defer("private_key").order_by("-created_at", "-id")


def signing_key_get(*, pk: int) -> SigningKey | None:
    if not 0 < pk < 2**63:
        return None
    return SigningKey.objects.filter(pk=pk).first()
