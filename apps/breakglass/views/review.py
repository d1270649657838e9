"""Break-glass review and incident pages under /t/<tenant>/break-glass/ (#11, items 5 and 7).

Thin, like ``views``: parse, select through the tenant-scoped selectors (another
tenant's id is a 404), call one service. The review pages need ``audit.read``
(auditors and approvers hold it): they show what elevated people did, from the
audit log, through ``apps.audit``'s own selectors and export.
"""

from __future__ import annotations

import functools
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from apps.access.decorators import TenantRequest, tenant_view
from apps.audit import export as audit_export
from apps.audit import selectors as audit_selectors
from apps.audit.services import record_export
from apps.breakglass import incidents, selectors
from apps.breakglass.forms import ElevationFilterForm, IncidentCloseForm
from apps.breakglass.models import Elevation
from apps.breakglass.services import BreakglassError
from apps.core.htmx import render_page
from apps.core.pagination import InvalidCursorError
from apps.core.shortcuts import found_or_404

PAGE_SIZE = 25
EVENTS_PAGE_SIZE = 50


def _url(name: str, request: TenantRequest, **kwargs: Any) -> str:
    return reverse(f"breakglass:{name}", kwargs={"tenant_slug": request.tenant.slug, **kwargs})


def _with_query(url: str, query: str) -> str:
    return f"{url}?{query}" if query else url


@tenant_view("audit.read")
@require_safe
def elevation_list(request: TenantRequest) -> HttpResponse:
    """Every elevation of the tenant, newest request first; filters and keyset pages. Bad filters: 400."""
    form = ElevationFilterForm(request.GET, policies=selectors.policy_list(tenant=request.tenant))
    list_url = _url("elevation_list", request)
    context: dict[str, Any] = {"form": form, "list_url": list_url, "page": None, "status": request.GET.get("status")}
    if not form.is_valid():
        return render_page(request, "breakglass/elevation_list.html", context, status=400)
    try:
        page = selectors.elevation_page(
            tenant=request.tenant, filters=form.filters(), cursor=form.cleaned_data["cursor"] or None, size=PAGE_SIZE
        )
    except InvalidCursorError:  # the form checked it; a cursor can still be well-formed and meaningless
        form.add_error("cursor", form.invalid_cursor_message)
        return render_page(request, "breakglass/elevation_list.html", context, status=400)
    context["page"] = page
    context["newest_url"] = _with_query(list_url, form.query_string())
    if page.next_cursor:
        context["older_url"] = _with_query(list_url, form.query_string(cursor=page.next_cursor))
    return render_page(request, "breakglass/elevation_list.html", context)


def _events_filters(elevation: Elevation) -> audit_selectors.AuditFilters | None:
    window = selectors.elevation_window(elevation)
    if window is None:
        return None
    # The person's own events (every e-mail they had: the audit selector resolves it to the user id).
    return audit_selectors.AuditFilters(
        actor=elevation.requester_address, occurred_from=window[0], occurred_before=window[1]
    )


@tenant_view("audit.read")
@require_safe
def elevation_detail(request: TenantRequest, pk: int) -> HttpResponse:
    """One elevation: its timeline and the elevated person's audit events during the window (keyset paged)."""
    elevation = found_or_404(selectors.elevation_detail(tenant=request.tenant, elevation_id=pk))
    filters = _events_filters(elevation)
    detail_url = _url("elevation_detail", request, pk=elevation.pk)
    context: dict[str, Any] = {
        "elevation": elevation,
        "window": selectors.elevation_window(elevation),
        "end_cause": selectors.end_cause(tenant=request.tenant, elevation=elevation),
        "page": None,
    }
    cursor = request.GET.get("cursor") or None
    if filters is not None:
        try:
            page = audit_selectors.event_list(
                tenant=request.tenant, filters=filters, cursor=cursor, size=EVENTS_PAGE_SIZE
            )
        except InvalidCursorError:
            context["cursor_error"] = "This page link is invalid. Start again from the newest events."
            return render_page(request, "breakglass/elevation_detail.html", context, partial="events", status=400)
        context["page"] = page
        context["older_url"] = f"{detail_url}?cursor={page.next_cursor}" if page.next_cursor else None
        context["export_urls"] = {
            fmt: _url("elevation_export", request, pk=elevation.pk, fmt=fmt) for fmt in audit_export.FORMATS
        }
    context["detail_url"] = detail_url
    return render_page(request, "breakglass/elevation_detail.html", context, partial="events")


@tenant_view("audit.read")
@require_safe
def elevation_export(request: TenantRequest, pk: int, fmt: str) -> HttpResponse:
    """The elevated person's events during the window as CSV or JSON Lines (audit's exporter); audited."""
    elevation = found_or_404(selectors.elevation_detail(tenant=request.tenant, elevation_id=pk))
    filters = _events_filters(elevation)
    if filters is None:
        messages.error(request, f"Elevation #{elevation.pk} was never active: there is nothing to export.")
        return redirect(_url("elevation_detail", request, pk=elevation.pk))
    record_export(tenant=request.tenant, fmt=fmt, filters={**filters.as_metadata(), "elevation": elevation.pk})
    rows = audit_selectors.event_export_rows(tenant=request.tenant, filters=filters)
    return audit_export.streaming_response(rows, fmt=fmt, name=f"{request.tenant.slug}-elevation-{elevation.pk}")


# --- incidents (item 5) ------------------------------------------------------------------------


@tenant_view("breakglass.approve")
@require_safe
def incident_list(request: TenantRequest) -> HttpResponse:
    """Open incidents (named by pending or active elevations), the close form and recent closures."""
    return render(request, "breakglass/incidents.html", _incident_context(request, IncidentCloseForm()))


def _incident_context(request: TenantRequest, form: IncidentCloseForm) -> dict[str, Any]:
    return {
        "form": form,
        "open_incidents": selectors.open_incidents(tenant=request.tenant),
        "closures": selectors.incident_closures(tenant=request.tenant),
        "webhook": selectors.incident_webhook(tenant=request.tenant),
        "can_manage_webhook": request.can("role.manage"),
        "can_review": request.can("audit.read"),
    }


# Approvers of the affected policies or member managers may close: the service decides per elevation,
# so the gate is only the console (as for "End now").
@tenant_view("tenant.view")
@require_POST
def incident_close(request: TenantRequest) -> HttpResponse:
    """Close an incident; success or the reason it was refused comes back as a message (nothing changed then)."""
    form = IncidentCloseForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give the incident reference, e.g. INC-123 (at most 100 characters).")
    else:
        try:
            closure = incidents.incident_close(
                tenant=request.tenant, actor=request.membership, incident_ref=form.cleaned_data["incident_ref"]
            )
        except BreakglassError as exc:
            messages.error(request, str(exc))
        else:
            messages.success(
                request,
                f"Incident {closure.incident_ref} closed: {closure.ended} elevation{'s' if closure.ended != 1 else ''} "
                f"ended, {closure.cancelled} pending request{'s' if closure.cancelled != 1 else ''} cancelled.",
            )
    if request.can("breakglass.approve"):
        return redirect(_url("incident_list", request))
    if request.can("breakglass.request"):
        return redirect(_url("index", request))
    return redirect("tenants:dashboard", tenant_slug=request.tenant.slug)


@tenant_view("role.manage")
def incident_webhook(request: TenantRequest) -> HttpResponse:
    """The incident webhook's URL and state; POST ``action`` enable / rotate / retire / disable.

    A new secret is in this one response only (``Cache-Control: no-store``) and never shown again.
    The service also demands breakglass.approve.
    """
    secret = None
    if request.method == "POST":
        action = request.POST.get("action", "")
        steps = {
            "enable": incidents.incident_webhook_enable,
            "rotate": incidents.incident_webhook_rotate,
            "use": functools.partial(incidents.incident_webhook_rotate, secret=request.POST.get("secret", "")),
            "retire": incidents.incident_webhook_retire_previous,
            "disable": incidents.incident_webhook_disable,
        }
        if action not in steps:
            messages.error(request, "Choose enable, rotate, use, retire or disable.")
            return redirect(_url("incident_webhook", request))
        try:
            result = steps[action](tenant=request.tenant, actor=request.membership)
        except BreakglassError as exc:
            messages.error(request, str(exc))
            return redirect(_url("incident_webhook", request))
        if action == "use":
            messages.success(request, "Your incident tool's secret is stored; the previous one still works for now.")
            return redirect(_url("incident_webhook", request))
        if action in ("enable", "rotate"):
            secret = result[1]
        else:
            messages.success(
                request, "Previous secret retired." if action == "retire" else "Incident webhook disabled."
            )
            return redirect(_url("incident_webhook", request))
    hook = selectors.incident_webhook(tenant=request.tenant)
    context = {
        "webhook": hook,
        "secret": secret,
        "rotated": request.method == "POST" and request.POST.get("action") == "rotate",
        "webhook_url": request.build_absolute_uri(reverse("breakglass_webhooks:incident", args=[hook.token]))
        if hook
        else None,
        "grace_hours": incidents.rotation_grace().total_seconds() / 3600,
    }
    response = render(request, "breakglass/incident_webhook.html", context)
    response["Cache-Control"] = "no-store"
    return response
