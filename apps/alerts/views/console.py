"""Alerts console pages under /t/<tenant>/alerts/ (thin: parse, select, call one service, render).

Permissions (catalog names; see the README's alerts section for why):

- ``audit.read`` opens the alert list and detail, the rules and endpoints
  lists and the delivery log: the people who read the audit log are the
  people who watch for anomalies;
- ``role.manage`` changes anything — rules, webhook endpoints and their
  secrets, acknowledging and resolving, sending a failed delivery again.
  Endpoints decide where tenant data leaves the installation, so the right
  to change them sits with the tenant's administrators (a role.manage holder
  can already grant itself anything, so this adds power to nobody);
- the fraud queue is in ``apps.alerts.views.fraud`` (``apiclient.manage``).

Object URLs take ids looked up through tenant-scoped selectors: another
tenant's id is a 404, and changes nothing.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render

from apps.access.decorators import tenant_view
from apps.alerts import conf, selectors
from apps.alerts.forms import AlertFilterForm, DeliveryFilterForm, EndpointForm, RuleForm, apply_service_errors
from apps.alerts.services import delivery as delivery_services
from apps.alerts.services import lifecycle, rules
from apps.core.htmx import render_page
from apps.core.shortcuts import found_or_404

VIEW = "audit.read"
MANAGE = "role.manage"
PAGE_SIZE = 25


def _page(request: HttpRequest, qs: QuerySet[Any]) -> Page:
    return Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))


def _slug(request: HttpRequest) -> str:
    return request.tenant.slug  # type: ignore[attr-defined]


# --- alerts --------------------------------------------------------------------------------------


@tenant_view(VIEW)
def alert_list(request: HttpRequest) -> HttpResponse:
    data = request.GET.copy()
    data.setdefault("status", "active")  # open and acknowledged unless asked otherwise ("Any status" sends "")
    filters = AlertFilterForm(data)
    qs = selectors.alert_list(tenant=request.tenant, **filters.filters())
    context = {
        "filters": filters,
        "page": _page(request, qs),
        "counts": selectors.open_counts(tenant=request.tenant, with_cases=False),
        "can_manage": request.can(MANAGE),
        "can_fraud": request.can("apiclient.manage", for_reading=True),
    }
    return render_page(request, "alerts/alert_list.html", context)


@tenant_view(VIEW)
def alert_detail(request: HttpRequest, pk: int) -> HttpResponse:
    alert = found_or_404(selectors.alert_get(tenant=request.tenant, pk=pk))
    context = {
        "alert": alert,
        "deliveries": selectors.alert_deliveries(alert=alert),
        "can_manage": request.can(MANAGE),
    }
    return render(request, "alerts/alert_detail.html", context)


def _transition(request: HttpRequest, pk: int, step: Any, done: str) -> HttpResponse:
    alert = found_or_404(selectors.alert_get(tenant=request.tenant, pk=pk))
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        step(alert=alert, actor=request.membership)
    except ValidationError as exc:
        messages.warning(request, " ".join(exc.messages))
    else:
        messages.success(request, done)
    return redirect("alerts:alert_detail", tenant_slug=_slug(request), pk=alert.pk)


@tenant_view(MANAGE)
def alert_acknowledge(request: HttpRequest, pk: int) -> HttpResponse:
    return _transition(request, pk, lifecycle.alert_acknowledge, "Alert acknowledged.")


@tenant_view(MANAGE)
def alert_resolve(request: HttpRequest, pk: int) -> HttpResponse:
    return _transition(request, pk, lifecycle.alert_resolve, "Alert resolved.")


# --- rules ---------------------------------------------------------------------------------------


@tenant_view(VIEW)
def rule_list(request: HttpRequest) -> HttpResponse:
    context = {
        "page": _page(request, selectors.rule_list(tenant=request.tenant)),
        "can_manage": request.can(MANAGE),
        "can_fraud": request.can("apiclient.manage", for_reading=True),
    }
    return render(request, "alerts/rule_list.html", context)


@tenant_view(MANAGE)
def rule_create(request: HttpRequest) -> HttpResponse:
    form = RuleForm(request.POST or None, initial={"enabled": True})
    if request.method == "POST" and form.is_valid():
        try:
            rule = rules.rule_create(tenant=request.tenant, actor=request.membership, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Rule “{rule.name}” created; it is evaluated every 5 minutes.")
            return redirect("alerts:rule_list", tenant_slug=_slug(request))
    return render(request, "alerts/rule_form.html", {"form": form, "rule": None})


@tenant_view(MANAGE)
def rule_edit(request: HttpRequest, pk: int) -> HttpResponse:
    rule = found_or_404(selectors.rule_get(tenant=request.tenant, pk=pk))
    form = RuleForm(request.POST or None, initial=RuleForm.initial_for(rule))
    if request.method == "POST" and form.is_valid():
        try:
            rule = rules.rule_update(rule=rule, data=form.cleaned_data, actor=request.membership)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Rule “{rule.name}” saved.")
            return redirect("alerts:rule_list", tenant_slug=_slug(request))
    return render(request, "alerts/rule_form.html", {"form": form, "rule": rule})


@tenant_view(MANAGE)
def rule_delete(request: HttpRequest, pk: int) -> HttpResponse:
    rule = found_or_404(selectors.rule_get(tenant=request.tenant, pk=pk))
    if request.method == "POST":
        rules.rule_delete(rule=rule, actor=request.membership)
        messages.success(request, f"Rule “{rule.name}” deleted; its alerts stay in the list.")
        return redirect("alerts:rule_list", tenant_slug=_slug(request))
    return render(request, "alerts/confirm_delete.html", {"object": rule, "kind": "rule"})


# --- webhook endpoints ---------------------------------------------------------------------------


@tenant_view(VIEW)
def endpoint_list(request: HttpRequest) -> HttpResponse:
    context = {
        "page": _page(request, selectors.endpoint_list(tenant=request.tenant)),
        "overlap_hours": conf.secret_overlap_hours(),
        "can_manage": request.can(MANAGE),
        "can_fraud": request.can("apiclient.manage", for_reading=True),
    }
    return render(request, "alerts/endpoint_list.html", context)


def _secret_page(request: HttpRequest, created: rules.EndpointWithSecret, *, new: bool) -> HttpResponse:
    response = render(
        request, "alerts/endpoint_secret.html", {"endpoint": created.endpoint, "secret": created.secret, "new": new}
    )
    response["Cache-Control"] = "no-store"  # the one time the secret is shown: never from a cache
    return response


@tenant_view(MANAGE)
def endpoint_create(request: HttpRequest) -> HttpResponse:
    form = EndpointForm(request.POST or None, initial={"send_alerts": True, "enabled": True})
    if request.method == "POST" and form.is_valid():
        try:
            created = rules.endpoint_create(tenant=request.tenant, actor=request.membership, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            return _secret_page(request, created, new=True)
    return render(request, "alerts/endpoint_form.html", {"form": form, "endpoint": None})


@tenant_view(MANAGE)
def endpoint_edit(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = found_or_404(selectors.endpoint_get(tenant=request.tenant, pk=pk))
    form = EndpointForm(request.POST or None, initial=EndpointForm.initial_for(endpoint))
    if request.method == "POST" and form.is_valid():
        try:
            endpoint = rules.endpoint_update(endpoint=endpoint, data=form.cleaned_data, actor=request.membership)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Endpoint “{endpoint.name}” saved.")
            return redirect("alerts:endpoint_list", tenant_slug=_slug(request))
    return render(request, "alerts/endpoint_form.html", {"form": form, "endpoint": endpoint})


@tenant_view(MANAGE)
def endpoint_rotate(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = found_or_404(selectors.endpoint_get(tenant=request.tenant, pk=pk))
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    return _secret_page(request, rules.endpoint_rotate_secret(endpoint=endpoint, actor=request.membership), new=False)


@tenant_view(MANAGE)
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = found_or_404(selectors.endpoint_get(tenant=request.tenant, pk=pk))
    if request.method == "POST":
        rules.endpoint_delete(endpoint=endpoint, actor=request.membership)
        messages.success(request, f"Endpoint “{endpoint.name}” deleted; its delivery log stays.")
        return redirect("alerts:endpoint_list", tenant_slug=_slug(request))
    return render(request, "alerts/confirm_delete.html", {"object": endpoint, "kind": "webhook endpoint"})


# --- delivery log --------------------------------------------------------------------------------


@tenant_view(VIEW)
def delivery_list(request: HttpRequest) -> HttpResponse:
    filters = DeliveryFilterForm(request.GET)
    qs = selectors.delivery_list(tenant=request.tenant, **filters.filters())
    context = {
        "filters": filters,
        "page": _page(request, qs),
        "can_fraud": request.can("apiclient.manage", for_reading=True),
    }
    return render_page(request, "alerts/delivery_list.html", context)


@tenant_view(VIEW)
def delivery_detail(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = found_or_404(selectors.delivery_get(tenant=request.tenant, pk=pk))
    context = {
        "delivery": delivery,
        "attempts": selectors.delivery_attempts(delivery=delivery),
        "payload_json": json.dumps(delivery.payload, indent=2, sort_keys=True),
        "can_manage": request.can(MANAGE),
    }
    return render(request, "alerts/delivery_detail.html", context)


@tenant_view(MANAGE)
def delivery_retry(request: HttpRequest, pk: int) -> HttpResponse:
    delivery = found_or_404(selectors.delivery_get(tenant=request.tenant, pk=pk))
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if delivery.status != delivery.Status.FAILED:
        messages.warning(request, "Only a failed delivery can be sent again.")
    else:
        delivery_services.delivery_retry(delivery=delivery, actor=request.membership)
        messages.success(request, "Sending again; the attempts appear below.")
    return redirect("alerts:delivery_detail", tenant_slug=_slug(request), pk=delivery.pk)
