"""Runbook and retention pages under /t/<tenant>/runbooks/, and the restore drills under /platform/runbook/.

Thin: parse, select through the tenant-scoped selectors (another tenant's id is
a 404), call one service, render or redirect. Reading needs ``audit.read``;
marking lines and refreshing need ``role.manage``; signing off is for an Owner
(the service enforces it). The mark form works without JavaScript (post, then
redirect back to the line) and with htmx (the line alone is swapped).
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from apps.access.decorators import TenantRequest, platform_view, tenant_view
from apps.audit.selectors import AuditFilters, event_queryset
from apps.core.htmx import wants_partial
from apps.core.shortcuts import found_or_404
from apps.runbook import drill, retention, selectors, services
from apps.runbook.forms import MarkForm, RetentionForm, SignOffForm
from apps.runbook.models import Runbook, RunbookItem
from apps.tenants.models import Membership

PAGE_SIZE = 20


def _runbook(request: TenantRequest, runbook_id: int) -> Runbook:
    return found_or_404(selectors.runbook_get(tenant=request.tenant, runbook_id=runbook_id))


def _detail_url(runbook: Runbook, item: RunbookItem | None = None) -> str:
    url = reverse("runbook:detail", kwargs={"tenant_slug": runbook.tenant.slug, "runbook_id": runbook.pk})
    return f"{url}#item-{item.pk}" if item is not None else url


@tenant_view("audit.read")
@require_safe
def runbook_list(request: TenantRequest) -> HttpResponse:
    page = Paginator(selectors.runbook_list(tenant=request.tenant), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "runbook/list.html", {"page": page, "latest_drill": selectors.latest_drill()})


def _with_rotation(request: TenantRequest, items: list[RunbookItem]) -> list[RunbookItem]:
    """Each rotate line gets ``rotation``: its credential's live status (one query for all)."""
    status = selectors.rotation_status(tenant=request.tenant, items=items)
    for item in items:
        item.rotation = status.get(item.credential_id) if item.credential_id else None  # type: ignore[attr-defined]
    return items


def _detail_context(request: TenantRequest, runbook: Runbook) -> dict[str, Any]:
    items = _with_rotation(request, selectors.runbook_items(runbook=runbook))
    may_mark = runbook.is_open and request.can("role.manage")
    return {
        "runbook": runbook,
        "checklists": selectors.checklists_of(items),
        "total": len(items),
        "marked": sum(1 for item in items if item.mark),
        "latest_drill": selectors.latest_drill(),
        "may_mark": may_mark,
        "may_sign": may_mark and request.membership.role == Membership.Role.OWNER,
        "sign_form": SignOffForm(),
    }


@tenant_view("audit.read")
@require_safe
def runbook_detail(request: TenantRequest, runbook_id: int) -> HttpResponse:
    runbook = _runbook(request, runbook_id)
    return render(request, "runbook/detail.html", _detail_context(request, runbook))


def _row(request: TenantRequest, runbook: Runbook, item: RunbookItem, form: MarkForm | None) -> HttpResponse:
    """The htmx answer: the line, and the progress section out of band (one count query)."""
    runbook = selectors.runbook_get(tenant=request.tenant, runbook_id=runbook.pk) or runbook  # status after the write
    progress = selectors.runbook_progress(runbook=runbook)
    context = {
        "runbook": runbook,
        "item": _with_rotation(request, [item])[0],
        "form": form,
        "may_mark": runbook.is_open,
        "latest_drill": selectors.latest_drill(),
        "total": progress.total,
        "marked": progress.marked,
    }
    return render(request, "runbook/partials/_item_swap.html", context)


@tenant_view("role.manage")
@require_POST
def item_mark(request: TenantRequest, runbook_id: int, item_id: int) -> HttpResponse:
    runbook = _runbook(request, runbook_id)
    item = found_or_404(selectors.item_get(runbook=runbook, item_id=item_id))
    form = MarkForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            item = services.item_mark(
                runbook=runbook,
                item_id=item.pk,
                mark=form.cleaned_data["mark"],
                note=form.cleaned_data["note"],
                actor=request.membership,
            )
        except services.RunbookError as exc:
            error = str(exc)
            form.add_error(None, error)
    else:
        error = "; ".join(message for errors in form.errors.values() for message in errors)
    if wants_partial(request):
        # 200 either way: htmx swaps only successful responses, and the row shows the error itself.
        return _row(request, runbook, item, form if error else None)
    if error:
        messages.error(request, f"Line not marked: {error}")
    else:
        messages.success(request, f"Marked “{item.get_mark_display()}”: {item.title}")
    return redirect(_detail_url(runbook, item))


@tenant_view("role.manage")
@require_POST
def runbook_refresh(request: TenantRequest, runbook_id: int) -> HttpResponse:
    runbook = _runbook(request, runbook_id)
    try:
        added, updated = services.runbook_refresh(runbook=runbook, actor=request.membership)
    except services.RunbookError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Lines rebuilt up to now: {added} new, {updated} updated; marks kept.")
    return redirect(_detail_url(runbook))


@tenant_view("role.manage")
@require_POST
def runbook_sign_off(request: TenantRequest, runbook_id: int) -> HttpResponse:
    runbook = _runbook(request, runbook_id)
    form = SignOffForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Keep the sign-off note under 1000 characters.")
        return redirect(_detail_url(runbook))
    try:
        services.runbook_sign_off(runbook=runbook, actor=request.membership, note=form.cleaned_data["note"])
    except services.RunbookError as exc:
        messages.error(request, f"Not signed off: {exc}")
    else:
        messages.success(request, f"Runbook {runbook.quarter} signed off.")
    return redirect(_detail_url(runbook))


@tenant_view("audit.read")
@require_safe
def runbook_print(request: TenantRequest, runbook_id: int) -> HttpResponse:
    runbook = _runbook(request, runbook_id)
    services.runbook_export_recorded(runbook=runbook, fmt="html", actor=request.membership)
    return render(request, "runbook/print.html", _detail_context(request, runbook))


@tenant_view("audit.read")
@require_safe
def runbook_export_json(request: TenantRequest, runbook_id: int) -> HttpResponse:
    runbook = _runbook(request, runbook_id)
    document = services.runbook_document(runbook=runbook, items=selectors.runbook_items(runbook=runbook))
    services.runbook_export_recorded(runbook=runbook, fmt="json", actor=request.membership)
    response = HttpResponse(json.dumps(document, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="runbook-{runbook.tenant.slug}-{runbook.quarter}.json"'
    return response


# --- retention --------------------------------------------------------------------------------


def _last_purge(request: TenantRequest) -> Any:
    filters = AuditFilters(action="retention.purge")
    return event_queryset(tenant=request.tenant, filters=filters).order_by("-occurred_at", "-id").first()


@tenant_view("audit.read")
@require_safe
def retention_view(request: TenantRequest) -> HttpResponse:
    context = {
        "policy": retention.policy_for(tenant=request.tenant),
        "minimums": retention.minimums(),
        "last_purge": _last_purge(request),
        "may_edit": request.can("role.manage"),
    }
    return render(request, "runbook/retention.html", context)


@tenant_view("role.manage")
def retention_edit(request: TenantRequest) -> HttpResponse:
    policy = retention.policy_for(tenant=request.tenant)
    form = RetentionForm(request.POST or None, initial=policy.as_dict())
    if request.method == "POST" and form.is_valid():
        try:
            retention.policy_update(tenant=request.tenant, actor=request.membership, **form.cleaned_data)
        except retention.RetentionError as exc:
            for field, message in exc.errors.items():
                form.add_error(field, message)
        else:
            messages.success(request, "Retention settings saved.")
            return redirect("runbook:retention", tenant_slug=request.tenant.slug)
    return render(request, "runbook/retention_form.html", {"form": form, "policy": policy})


# --- platform: restore drills -----------------------------------------------------------------


@platform_view
@require_safe
def drill_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(selectors.drill_list(), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "runbook/drill_list.html", {"page": page})


@platform_view
@require_POST
def drill_start(request: HttpRequest) -> HttpResponse:
    try:
        started = services.drill_start(by=request.user)
    except drill.DrillError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Restore drill #{started.pk} queued; the worker runs it now.")
    return redirect("platform:runbook_drills")


@platform_view
@require_safe
def drill_detail(request: HttpRequest, drill_id: int) -> HttpResponse:
    result = found_or_404(selectors.drill_get(drill_id=drill_id))
    return render(request, "runbook/drill_detail.html", {"drill": result})
