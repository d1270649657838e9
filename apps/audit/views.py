"""Audit console pages of a tenant: the filterable list and its exports (audit.read)."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_safe

from apps.access.decorators import tenant_view
from apps.audit import export, selectors, services
from apps.audit.forms import AuditFilterForm
from apps.core.pagination import Page

TEMPLATE = "audit/event_list.html"


@tenant_view("audit.read")
@require_safe
def tenant_audit_list(request: HttpRequest) -> HttpResponse:
    """The tenant's events, newest first; an htmx request gets only the results partial.

    Invalid filters or a bad cursor answer 400 with the form's errors.
    """
    tenant = request.tenant  # type: ignore[attr-defined]
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _render(request, _context(form, tenant), status=400)
    page = selectors.event_list(
        tenant=tenant, filters=form.filters(), cursor=form.cleaned_data["cursor"] or None, size=form.page_size
    )
    return _render(request, _context(form, tenant, page=page))


@tenant_view("audit.read")
@require_safe
def tenant_audit_export(request: HttpRequest, fmt: str) -> HttpResponse:
    """Stream the tenant's filtered events as CSV or JSON Lines (``fmt``); the export is audited."""
    tenant = request.tenant  # type: ignore[attr-defined]
    form = AuditFilterForm(request.GET)
    if not form.is_valid():
        return _render(request, _context(form, tenant), status=400)
    filters = form.filters()
    services.record_export(tenant=tenant, fmt=fmt, filters=filters.as_metadata())
    rows = selectors.event_export_rows(tenant=tenant, filters=filters)
    return export.streaming_response(rows, fmt=fmt, name=tenant.slug)


def _context(form: AuditFilterForm, tenant: Any, page: Page | None = None) -> dict[str, Any]:
    list_url = reverse("audit:tenant_list", kwargs={"tenant_slug": tenant.slug})
    query = form.query_string() if page is not None else ""
    context: dict[str, Any] = {"form": form, "tenant": tenant, "platform": False, "page": page, "list_url": list_url}
    for fmt in export.FORMATS:
        url = reverse("audit:tenant_export", kwargs={"tenant_slug": tenant.slug, "fmt": fmt})
        context[f"export_{fmt}_url"] = f"{url}?{query}" if query else url
    if page is not None:
        context["newest_url"] = f"{list_url}?{query}" if query else list_url
        if page.next_cursor:
            context["older_url"] = f"{list_url}?{form.query_string(cursor=page.next_cursor)}"
    return context


def _render(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    template = f"{TEMPLATE}#results" if request.htmx else TEMPLATE  # type: ignore[attr-defined]
    return render(request, template, context, status=status)
