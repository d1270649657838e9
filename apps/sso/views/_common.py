"""Shared pieces of the SSO pages: session keys and limits, the ``next`` check, error pages, settings URLs.

Constants and small helpers used by both the public sign-in flow and the
settings pages; ``_settings_url`` also backs the ``sso_urls`` template tag, so a
page links to the tenant's settings or, for the platform, to /platform/sso/.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse

from apps.sso import services
from apps.sso.models import SSOConnection
from apps.sso.types import SSOError
from apps.tenants.models import Membership, Tenant

SSO_MANAGE = "sso.manage"
FLOWS_KEY = "sso_flows"
TEST_REPORT_KEY = "sso_test_report"
FLOW_MAX_AGE = 10 * 60
FLOWS_MAX = 5
NEXT_MAX = 2000
RESUBMIT_FIELD = "bastion_resubmit"
DRAFT_ID_SALT = "bastion.sso.new-connection"
DRAFT_ID_MAX_AGE = 8 * 24 * 3600  # outlives the 7 days an unsaved draft is kept
Kind = SSOConnection.Kind
Status = SSOConnection.Status


class TenantRequest(HttpRequest):
    """What ``tenant_view`` adds to the request (for type hints only)."""

    tenant: Tenant | None  # None on the platform's SSO pages (staff)
    membership: Membership | None


# --- helpers ------------------------------------------------------------------------------------


def _base_url(request: HttpRequest) -> str:
    """Scheme and host the SP URLs are built on: ``settings.SSO_BASE_URL`` when set, else this request's."""
    configured = str(getattr(settings, "SSO_BASE_URL", "") or "")
    if configured:
        return configured.rstrip("/")
    return f"{request.scheme}://{request.get_host()}"


def safe_next(value: str) -> str | None:
    """``value`` if it is a same-site relative path ('' stays ''), else None (off-site or malformed)."""
    if not value:
        return ""
    if len(value) > NEXT_MAX or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def _error(request: HttpRequest, *, title: str, message: str, status: int = 400, **extra: Any) -> HttpResponse:
    return render(request, "sso/error.html", {"title": title, "message": message, **extra}, status=status)


def _sign_in_error(request: HttpRequest, exc: SSOError, connection: SSOConnection | None = None) -> HttpResponse:
    """The page a refused sign-in ends on: the reason in plain words and the way back."""
    status = 403 if exc.code in services.DENIAL_CODES else 400
    return _error(
        request,
        title="Sign-in did not work",
        message=exc.message,
        status=status,
        code=exc.code,
        connection=connection,
    )


def _settings_url(tenant: Tenant | None, name: str, **kwargs: Any) -> str:
    """A settings page of ``tenant``'s SSO, or of the platform's (under /platform/sso/) for ``None``."""
    if tenant is None:
        return reverse(f"platform:sso:{name}", kwargs=kwargs)
    return reverse(f"sso_settings:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})
