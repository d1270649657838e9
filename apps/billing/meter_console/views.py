"""Usage and budget pages: ``billing.view`` to see, ``billing.manage`` to create, change or delete a budget.

Thin: parse, call a selector or one service of ``apps.billing``, render. The
usage chart is server-rendered SVG (``charts``), so it needs no script and
keeps the strict CSP; the CSV is the same daily rollups, streamed.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.access.decorators import TenantRequest, tenant_view
from apps.billing import budgets, usage_selectors
from apps.billing.meter_console import charts
from apps.billing.meter_console.forms import BudgetForm, UsageFilterForm
from apps.core.shortcuts import found_or_404

CSV_COLUMNS = (
    "day",
    "model",
    "client_id",
    "client_name",
    "events",
    "input_tokens",
    "output_tokens",
    "context_tokens",
    "tool_calls",
    "cost",
    "currency",
)


def _window(days: int) -> tuple[Any, Any]:
    end = datetime.now(UTC).date()
    return end - timedelta(days=days - 1), end


@tenant_view("billing.view")
def usage(request: TenantRequest) -> HttpResponse:
    """Tokens and cost per day, stacked by model or by API client, with the window's totals; ?format=csv exports."""
    form = UsageFilterForm(request.GET or None)
    days, by = form.values()
    start, end = _window(days)
    if request.GET.get("format") == "csv":
        return _csv(request, start, end)
    summary = usage_selectors.usage_summary(
        tenant=request.tenant, start=start, end=end, by=by, currency=settings.BILLING_CURRENCY
    )
    money = charts.money_format(summary.currency)
    context = {
        "form": form,
        "days": days,
        "by": by,
        "summary": summary,
        "cost_chart": charts.stacked(
            title=f"Cost per day ({summary.currency})",
            days=summary.days,
            series=summary.series,
            value=lambda s, i: float(s.cost[i]),
            fmt=money,
        ),
        "token_chart": charts.stacked(
            title="Tokens per day (input + output)",
            days=summary.days,
            series=summary.series,
            value=lambda s, i: float(s.tokens[i]),
            fmt=charts.tokens_format,
        ),
        "alerts": list(budgets.recent_alerts(tenant=request.tenant)),
        "start": start,
        "end": end,
    }
    return render(request, "billing/usage.html", context)


def _safe(value: Any) -> Any:
    # A spreadsheet runs a cell that starts with = + - @ as a formula: client names are typed by people.
    text = str(value)
    return "'" + text if text[:1] in {"=", "+", "-", "@", "\t", "\r"} else value


class _Echo:
    def write(self, value: str) -> str:
        return value


def _csv(request: TenantRequest, start: Any, end: Any) -> StreamingHttpResponse:
    rows = usage_selectors.daily_rows(tenant=request.tenant, start=start, end=end)
    writer = csv.writer(_Echo())

    def lines() -> Iterator[str]:
        yield writer.writerow(CSV_COLUMNS)
        for row in rows.iterator(chunk_size=2000):
            yield writer.writerow(
                [
                    row.day.isoformat(),
                    _safe(row.model_name),
                    _safe(row.client_key),
                    _safe(row.client_name),
                    row.events,
                    row.input_tokens,
                    row.output_tokens,
                    row.context_tokens,
                    row.tool_calls,
                    f"{row.cost:.6f}",
                    row.currency,
                ]
            )

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    filename = f"usage-{request.tenant.slug}-{start:%Y%m%d}-{end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@tenant_view("billing.view")
def budget_list(request: TenantRequest) -> HttpResponse:
    """Every budget with this month's spend, holds and share; this month's alerts."""
    context = {
        "standings": budgets.budget_standings(tenant=request.tenant),
        "alerts": list(budgets.recent_alerts(tenant=request.tenant)),
        "can_manage": request.can("billing.manage"),
        "currency": settings.BILLING_CURRENCY,
    }
    return render(request, "billing/budgets.html", context)


def _save(request: TenantRequest, form: BudgetForm, budget: Any | None) -> HttpResponse | None:
    if not form.is_valid():
        return None
    try:
        if budget is None:
            saved = budgets.budget_create(tenant=request.tenant, data=form.cleaned_data, actor=request.user)
            messages.success(request, f"Budget “{saved.name}” created.")
        else:
            saved = budgets.budget_update(budget=budget, data=form.cleaned_data, actor=request.user)
            messages.success(request, f"Budget “{saved.name}” saved.")
    except ValidationError as error:
        by_field = error.message_dict if hasattr(error, "error_dict") else {None: error.messages}
        for field, errors in by_field.items():
            form.add_error(field if field in form.fields else None, errors)
        return None
    return redirect("billing_usage:budget_list", tenant_slug=request.tenant.slug)


@tenant_view("billing.manage")
@require_http_methods(["GET", "POST"])
def budget_create(request: TenantRequest) -> HttpResponse:
    form = BudgetForm(request.POST or None, tenant=request.tenant)
    if request.method == "POST" and (done := _save(request, form, None)) is not None:
        return done
    return render(request, "billing/budgets_form.html", {"form": form, "budget": None})


def _own_budget(request: TenantRequest, pk: int) -> Any:
    """The tenant's budget ``pk`` (404 if none); 403 for the one the plan manages (it follows the plan)."""
    budget = found_or_404(budgets.budget_get(tenant=request.tenant, pk=pk), "No such budget")
    if budget.source == budget.Source.PLAN:
        raise PermissionDenied(budgets.PLAN_MANAGED)
    return budget


@tenant_view("billing.manage")
@require_http_methods(["GET", "POST"])
def budget_edit(request: TenantRequest, pk: int) -> HttpResponse:
    budget = _own_budget(request, pk)
    data = request.POST if request.method == "POST" else None
    form = BudgetForm(data, tenant=request.tenant, initial=BudgetForm.initial_for(budget))
    if request.method == "POST" and (done := _save(request, form, budget)) is not None:
        return done
    return render(request, "billing/budgets_form.html", {"form": form, "budget": budget})


@tenant_view("billing.manage")
@require_http_methods(["GET", "POST"])
def budget_delete(request: TenantRequest, pk: int) -> HttpResponse:
    budget = _own_budget(request, pk)
    if request.method == "POST":
        try:
            budgets.budget_delete(budget=budget, actor=request.user)
        except budgets.PlanManagedError:
            raise PermissionDenied(budgets.PLAN_MANAGED) from None
        messages.success(request, f"Budget “{budget.name}” deleted.")
        return redirect("billing_usage:budget_list", tenant_slug=request.tenant.slug)
    return render(request, "billing/budgets_delete.html", {"budget": budget})
