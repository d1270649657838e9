"""The fraud review queue under /t/<tenant>/alerts/fraud/, behind ``apiclient.manage``.

Why that permission: the queue's remedy is disabling an API client, which is
what ``apiclient.manage`` allows on the API clients page; a reviewer who could
confirm a case but not act on it would only be half a reviewer. (Billing
admins hold ``billing.manage``, not this; the evidence is about clients, not
invoices.) Another tenant's case id is a 404 and changes nothing.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render

from apps.access.decorators import tenant_view
from apps.alerts import selectors
from apps.alerts.forms import AssignForm, CaseFilterForm, DecisionForm, FraudPolicyForm, apply_service_errors
from apps.alerts.services import fraud, rules
from apps.core.htmx import render_page
from apps.core.shortcuts import found_or_404

REVIEW = "apiclient.manage"
PAGE_SIZE = 25


@tenant_view(REVIEW)
def case_list(request: HttpRequest) -> HttpResponse:
    data = request.GET.copy()
    data.setdefault("status", "open")  # the review queue unless asked otherwise ("Any status" sends "")
    filters = CaseFilterForm(data)
    mine = request.membership if request.GET.get("mine") == "1" else None
    qs = selectors.case_list(tenant=request.tenant, mine=mine, **filters.filters())
    context = {
        "filters": filters,
        "mine": mine is not None,
        "page": Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page")),
        "policy": selectors.fraud_policy(tenant=request.tenant),
    }
    return render_page(request, "alerts/case_list.html", context)


@tenant_view(REVIEW)
def case_detail(request: HttpRequest, pk: int) -> HttpResponse:
    case = found_or_404(selectors.case_get(tenant=request.tenant, pk=pk))
    context = {
        "case": case,
        "assign_form": AssignForm(tenant=request.tenant, initial={"assignee": case.assignee_id}),
        "decision_form": DecisionForm(),
        "deliveries": selectors.case_deliveries(case=case),
    }
    return render(request, "alerts/case_detail.html", context)


@tenant_view(REVIEW)
def case_assign(request: HttpRequest, pk: int) -> HttpResponse:
    case = found_or_404(selectors.case_get(tenant=request.tenant, pk=pk))
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = AssignForm(request.POST, tenant=request.tenant)
    if form.is_valid():
        try:
            fraud.case_assign(case=case, assignee=form.cleaned_data["assignee"], actor=request.membership)
        except ValidationError as exc:
            messages.warning(request, " ".join(exc.messages))
        else:
            messages.success(request, "Case assigned.")
    else:
        messages.warning(request, "Choose an active member of this tenant.")
    return redirect("alerts:case_detail", tenant_slug=request.tenant.slug, pk=case.pk)


@tenant_view(REVIEW)
def case_decide(request: HttpRequest, pk: int) -> HttpResponse:
    case = found_or_404(selectors.case_get(tenant=request.tenant, pk=pk))
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = DecisionForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            if data["decision"] == "confirm":
                fraud.case_confirm(
                    case=case, actor=request.membership, note=data["note"], disable_client=data["disable_client"]
                )
            else:
                fraud.case_dismiss(case=case, actor=request.membership, note=data["note"])
        except ValidationError as exc:
            messages.warning(request, " ".join(exc.messages))
        else:
            done = "confirmed" if data["decision"] == "confirm" else "dismissed"
            extra = " The API client is disabled." if data["disable_client"] else ""
            messages.success(request, f"Case {done}.{extra}")
        return redirect("alerts:case_detail", tenant_slug=request.tenant.slug, pk=case.pk)
    context = {
        "case": case,
        "assign_form": AssignForm(tenant=request.tenant, initial={"assignee": case.assignee_id}),
        "decision_form": form,
        "deliveries": selectors.case_deliveries(case=case),
    }
    return render(request, "alerts/case_detail.html", context, status=400)


@tenant_view(REVIEW)
def policy_edit(request: HttpRequest) -> HttpResponse:
    policy = selectors.fraud_policy(tenant=request.tenant)
    form = FraudPolicyForm(request.POST or None, initial=FraudPolicyForm.initial_for(policy))
    if request.method == "POST" and form.is_valid():
        try:
            rules.fraud_policy_update(policy=policy, data=form.cleaned_data, actor=request.membership)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, "Screening settings saved; they apply from the next run (every 5 minutes).")
            return redirect("alerts:case_list", tenant_slug=request.tenant.slug)
    return render(request, "alerts/policy_form.html", {"form": form})
