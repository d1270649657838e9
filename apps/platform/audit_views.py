"""Platform staff's audit log: every tenant's events and the platform chain, and their export.

Reuses the audit app's form, selectors and template in the platform scope
(``tenant=None``); the tenant filter takes a slug, or "platform" for chain 0.
URLs (wired in apps.platform.urls): ``platform/audit/`` and ``platform/audit/export/?format=csv|jsonl``.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_safe

from apps.access.decorators import platform_view
from apps.audit import export, selectors, services
from apps.audit.forms import AuditFilterForm
from apps.core.pagination import Page

TEMPLATE = "audit/event_list.html"


@platform_view
@require_safe
def platform_audit_list(request: HttpRequest) -> HttpResponse:
    """All events, newest first, for platform staff; htmx requests get only the results partial.

    Invalid filters or a bad cursor answer 400 with the form's errors.
    """
    form = AuditFilterForm(request.GET, platform=True)
    if not form.is_valid():
        return _render(request, _context(request, form), status=400)
    page = selectors.event_list(
        tenant=None, filters=form.filters(), cursor=form.cleaned_data["cursor"] or None, size=form.page_size
    )
    return _render(request, _context(request, form, page=page))


@platform_view
@require_safe
def platform_audit_export(request: HttpRequest) -> HttpResponse:
    """Stream the filtered events as CSV or JSON Lines (``?format=``); audited on the platform chain."""
    fmt = request.GET.get("format", "csv")
    form = AuditFilterForm(request.GET, platform=True)
    if fmt not in export.FORMATS:
        form.is_valid()
        form.add_error(None, "Choose an export format: csv or jsonl.")
    if not form.is_valid():
        return _render(request, _context(request, form, list_url=_list_url(request)), status=400)
    filters = form.filters()
    services.record_export(tenant=None, fmt=fmt, filters=filters.as_metadata())
    rows = selectors.event_export_rows(tenant=None, filters=filters)
    name = filters.tenant.slug if filters.tenant else ("platform" if filters.platform_only else "all")
    return export.streaming_response(rows, fmt=fmt, name=name)


def _list_url(request: HttpRequest) -> str:
    # The export lives at <list>/export/ (see the module docstring).
    path = request.path
    return path[: -len("export/")] if path.endswith("/export/") else path


def _context(
    request: HttpRequest, form: AuditFilterForm, page: Page | None = None, list_url: str | None = None
) -> dict[str, Any]:
    list_url = list_url or request.path
    export_url = f"{list_url}export/"
    query = form.query_string() if page is not None else ""
    context: dict[str, Any] = {"form": form, "tenant": None, "platform": True, "page": page, "list_url": list_url}
    for fmt in export.FORMATS:
        context[f"export_{fmt}_url"] = f"{export_url}?{form.query_string(format=fmt)}"
    if page is not None:
        context["newest_url"] = f"{list_url}?{query}" if query else list_url
        if page.next_cursor:
            context["older_url"] = f"{list_url}?{form.query_string(cursor=page.next_cursor)}"
    return context


def _render(request: HttpRequest, context: dict[str, Any], status: int = 200) -> HttpResponse:
    template = f"{TEMPLATE}#results" if request.htmx else TEMPLATE  # type: ignore[attr-defined]
    return render(request, template, context, status=status)
