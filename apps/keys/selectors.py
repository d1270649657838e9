"""Named reads of the keys app for the console (tenant-scoped; the caller checked ``apiclient.manage``)."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.keys.models import MAX_TOKEN_LIFETIME, ApiClient, ClientSecret, SigningKey, TokenPolicy
from apps.tenants.models import Tenant


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


def signing_key_list() -> QuerySet[SigningKey]:
    """Every signing key, newest first, without the encrypted private halves."""
    return SigningKey.objects.defer("private_key").order_by("-created_at", "-id")


def signing_key_get(*, pk: int) -> SigningKey | None:
    if not 0 < pk < 2**63:
        return None
    return SigningKey.objects.filter(pk=pk).first()
