"""Audit console pages: the filterable list and its exports, in two scopes.

One page serves both: a tenant's log (``audit.read``, under /t/<tenant>/audit/)
and the platform staff's log of every tenant and the platform chain
(``platform_view``, under /platform/audit/, wired through
``apps/audit/platform_urls.py`` like the platform's SSO pages). The scope says
which events are read (``tenant=None`` is the platform scope) and where the
page and its exports live; everything else is the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_safe

from apps.access.decorators import TenantRequest, platform_view, tenant_view
from apps.audit import export, selectors, services
from apps.audit.forms import AuditFilterForm
from apps.audit.selectors import AuditFilters
from apps.core.htmx import render_page
from apps.core.pagination import Page
from apps.tenants.models import Tenant

TEMPLATE = "audit/event_list.html"


@dataclass(frozen=True, slots=True)
class AuditScope:
    """Whose events a page shows and where the page lives.

    ``tenant`` None is the platform scope (every tenant and the platform chain;
    callers must have checked platform staff). ``export_urls`` maps each export
    format to its URL without the filters.
    """

    tenant: Tenant | None
    list_url: str
    export_urls: dict[str, str]

    @property
    def platform(self) -> bool:
        return self.tenant is None

    def export_name(self, filters: AuditFilters) -> str:
        """The name in the download's file name: the tenant, "platform" for chain 0, or "all"."""
        if self.tenant is not None:
            return self.tenant.slug
        if filters.tenant is not None:
            return filters.tenant.slug
        return "platform" if filters.platform_only else "all"


def _tenant_scope(tenant: Tenant) -> AuditScope:
    return AuditScope(
        tenant=tenant,
        list_url=reverse("audit:tenant_list", kwargs={"tenant_slug": tenant.slug}),
        export_urls={
            fmt: reverse("audit:tenant_export", kwargs={"tenant_slug": tenant.slug, "fmt": fmt})
            for fmt in export.FORMATS
        },
    )


def _platform_scope() -> AuditScope:
    # The platform export takes its format as ?format= (one URL for both formats).
    export_url = reverse("platform:audit_export")
    return AuditScope(
        tenant=None,
        list_url=reverse("platform:audit"),
        export_urls={fmt: f"{export_url}?{urlencode({'format': fmt})}" for fmt in export.FORMATS},
    )


# --- the page and the export, for either scope ---------------------------------------------------


def audit_list(request: HttpRequest, *, scope: AuditScope) -> HttpResponse:
    """Events of ``scope``, newest first; an htmx request gets only the results partial.

    Invalid filters or a bad cursor answer 400 with the form's errors.
    """
    form = AuditFilterForm(request.GET, platform=scope.platform)
    if not form.is_valid():
        return _render(request, scope, form, status=400)
    page = selectors.event_list(
        tenant=scope.tenant, filters=form.filters(), cursor=form.cleaned_data["cursor"] or None, size=form.page_size
    )
    return _render(request, scope, form, page=page)


def audit_export(request: HttpRequest, *, scope: AuditScope, fmt: str) -> HttpResponse:
    """Stream the filtered events of ``scope`` as CSV or JSON Lines (``fmt``); the export is audited.

    An unknown format or invalid filters answer 400 with the list page and its errors.
    """
    form = AuditFilterForm(request.GET, platform=scope.platform)
    if fmt not in export.FORMATS:
        form.is_valid()
        form.add_error(None, "Choose an export format: csv or jsonl.")
    if not form.is_valid():
        return _render(request, scope, form, status=400)
    filters = form.filters()
    services.record_export(tenant=scope.tenant, fmt=fmt, filters=filters.as_metadata())
    rows = selectors.event_export_rows(tenant=scope.tenant, filters=filters)
    return export.streaming_response(rows, fmt=fmt, name=scope.export_name(filters))


def _with_query(url: str, query: str) -> str:
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _render(
    request: HttpRequest, scope: AuditScope, form: AuditFilterForm, *, page: Page | None = None, status: int = 200
) -> HttpResponse:
    # Export links carry the filters of a valid form only (the page shows them only then).
    query = form.query_string() if page is not None else ""
    context: dict[str, Any] = {
        "form": form,
        "tenant": scope.tenant,
        "platform": scope.platform,
        "page": page,
        "list_url": scope.list_url,
    }
    for fmt, url in scope.export_urls.items():
        context[f"export_{fmt}_url"] = _with_query(url, query)
    if page is not None:
        context["newest_url"] = _with_query(scope.list_url, query)
        if page.next_cursor:
            context["older_url"] = _with_query(scope.list_url, form.query_string(cursor=page.next_cursor))
    return render_page(request, TEMPLATE, context, partial="results", status=status)


# --- tenant scope (apps/audit/urls.py) -----------------------------------------------------------


@tenant_view("audit.read")
@require_safe
def tenant_audit_list(request: TenantRequest) -> HttpResponse:
    """The tenant's events (audit.read)."""
    return audit_list(request, scope=_tenant_scope(request.tenant))


@tenant_view("audit.read")
@require_safe
def tenant_audit_export(request: TenantRequest, fmt: str) -> HttpResponse:
    """The tenant's filtered events as a download (audit.read); audited on the tenant's chain."""
    return audit_export(request, scope=_tenant_scope(request.tenant), fmt=fmt)


# --- platform scope (apps/audit/platform_urls.py, mounted under /platform/audit/) ---------------


@platform_view
@require_safe
def platform_audit_list(request: HttpRequest) -> HttpResponse:
    """All events for platform staff; the tenant filter takes a slug, or "platform" for chain 0."""
    return audit_list(request, scope=_platform_scope())


@platform_view
@require_safe
def platform_audit_export(request: HttpRequest) -> HttpResponse:
    """All filtered events as a download (``?format=csv|jsonl``); audited on the platform chain."""
    return audit_export(request, scope=_platform_scope(), fmt=request.GET.get("format", "csv"))
