"""Billing pages: a tenant's plan, subscription, invoices and payment method; staff plans and dunning.

Tenant pages sit behind ``tenant_view``: ``billing.view`` to see, ``billing.manage`` to go
to Stripe (Checkout for a first plan or a plan change, the Customer Portal for payment
details). Sessions are created server-side and the browser is redirected to Stripe's URL.
With no ``STRIPE_SECRET_KEY`` the pages say so and offer no Stripe action. Staff pages
(``platform_view``) define plans and extend a tenant's dunning grace, audited.
"""

from __future__ import annotations

from csp.decorators import csp_update
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST

from apps.access.decorators import TenantRequest, platform_view, tenant_view
from apps.accounts.types import AuthenticatedRequest
from apps.billing import dunning, plans, stripe_api, subscriptions
from apps.billing.console.forms import ChangePlanForm, GraceForm, PlanForm
from apps.billing.errors import BillingError
from apps.billing.models import Plan
from apps.core.pagination import InvalidCursorError
from apps.core.shortcuts import found_or_404
from apps.tenants import selectors as tenant_selectors

INVOICES_PAGE_SIZE = 20
PLANS_PAGE_SIZE = 50


def _overview_url(request: TenantRequest, **query: str) -> str:
    url = request.build_absolute_uri(reverse("billing_console:overview", kwargs={"tenant_slug": request.tenant.slug}))
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


# --- tenant ---------------------------------------------------------------------------------------


@tenant_view("billing.view")
@csp_update({"form-action": list(stripe_api.STRIPE_PAGE_ORIGINS)})  # its forms redirect on to Stripe's pages
def overview(request: TenantRequest) -> HttpResponse:
    """Plan, subscription, payment method, dunning state, recent invoices; plan choice for billing admins."""
    returned = request.GET.get("checkout")
    if returned == "success":
        messages.success(request, "Thank you. Stripe confirms the change in a moment; this page shows it then.")
    elif returned == "cancel":
        messages.info(request, "Nothing was changed at Stripe.")
    context = {
        "billing": subscriptions.overview(tenant=request.tenant),
        "invoices": subscriptions.invoices_recent(tenant=request.tenant),
        "offered": list(plans.plans_offered()),
        "can_manage": request.can("billing.manage"),  # False while suspended: writes are refused
        "holds_manage": request.can("billing.manage", for_reading=True),
        "plan_form": ChangePlanForm(),
    }
    return render(request, "billing/overview.html", context)


@tenant_view("billing.view")
def invoice_list(request: TenantRequest) -> HttpResponse:
    """Every invoice of the tenant, newest first, keyset-paginated (an unreadable cursor says so)."""
    cursor = request.GET.get("cursor") or None
    try:
        page = subscriptions.invoice_page(tenant=request.tenant, cursor=cursor, size=INVOICES_PAGE_SIZE)
        error = ""
    except InvalidCursorError:
        page, error = None, "That page link is not valid (it may be cut short); start from the newest invoices."
    return render(request, "billing/invoice_list.html", {"page": page, "cursor": cursor, "cursor_error": error})


@tenant_view("billing.view")
def invoice_detail(request: TenantRequest, pk: int) -> HttpResponse:
    invoice = found_or_404(subscriptions.invoice_by_pk(tenant=request.tenant, pk=pk), "No such invoice")
    return render(request, "billing/invoice_detail.html", {"invoice": invoice})


@tenant_view("billing.manage")
@require_POST
def checkout(request: TenantRequest, plan_id: int) -> HttpResponse:
    """Change plan: to Stripe Checkout (first subscription) or the Portal's confirmation (a live one)."""
    # An inactive plan is not offered: the same 404 as an unknown one.
    plan = found_or_404(plans.plan_offered(pk=plan_id), "No such plan")
    form = ChangePlanForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Seats: " + " ".join(form.errors.get("seats", ["enter a whole number."])))
        return redirect("billing_console:overview", tenant_slug=request.tenant.slug)
    try:
        url = subscriptions.checkout_start(
            tenant=request.tenant,
            membership=request.membership,
            plan=plan,
            seats=form.cleaned_data["seats"],
            success_url=_overview_url(request, checkout="success"),
            cancel_url=_overview_url(request, checkout="cancel"),
        )
    except BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing_console:overview", tenant_slug=request.tenant.slug)
    return redirect(url)


@tenant_view("billing.manage")
@require_POST
def portal(request: TenantRequest) -> HttpResponse:
    """Manage payment: to the Stripe Customer Portal for this tenant's customer."""
    try:
        url = subscriptions.portal_start(
            tenant=request.tenant, membership=request.membership, return_url=_overview_url(request)
        )
    except BillingError as exc:
        messages.error(request, str(exc))
        return redirect("billing_console:overview", tenant_slug=request.tenant.slug)
    return redirect(url)


# --- staff ----------------------------------------------------------------------------------------


@platform_view
def plan_list(request: HttpRequest) -> HttpResponse:
    page = Paginator(plans.plan_list(), PLANS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "billing/plan_list.html", {"page": page})


def _plan_form_page(request: AuthenticatedRequest, plan: Plan | None) -> HttpResponse:
    form = PlanForm.for_plan(plan, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            saved = plans.plan_save(plan=plan, values=form.cleaned_data, by=request.user)
        except BillingError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Plan {saved.name} {'created' if plan is None else 'saved'}.")
            return redirect("platform:billing_plan_list")
    status = 400 if request.method == "POST" else 200
    return render(request, "billing/plan_form.html", {"form": form, "plan": plan}, status=status)


@platform_view
@require_http_methods(["GET", "HEAD", "POST"])
def plan_create(request: AuthenticatedRequest) -> HttpResponse:
    return _plan_form_page(request, None)


@platform_view
@require_http_methods(["GET", "HEAD", "POST"])
def plan_edit(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    return _plan_form_page(request, found_or_404(plans.plan_get(pk=pk), "No such plan"))


@platform_view
def dunning_list(request: HttpRequest) -> HttpResponse:
    """Unpaid failed invoices of every tenant, grace ending first."""
    page = Paginator(dunning.open_cases_all(), PLANS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "billing/dunning_list.html", {"page": page, "grace_days": dunning.grace_days()})


@platform_view
@require_http_methods(["GET", "HEAD", "POST"])
def grace_extend(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    tenant = found_or_404(tenant_selectors.tenant_get(slug=slug), "No such tenant")
    form = GraceForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            count = dunning.grace_extend(
                tenant=tenant, days=form.cleaned_data["days"], reason=form.cleaned_data["reason"], by=request.user
            )
        except BillingError as exc:
            form.add_error(None, str(exc))
        else:
            days = form.cleaned_data["days"]
            messages.success(request, f"Grace of {tenant.name} extended by {days} days ({count} unpaid invoice(s)).")
            return redirect("platform:billing_dunning")
    context = {"form": form, "tenant": tenant, "cases": list(dunning.open_cases(tenant=tenant))}
    return render(request, "billing/grace_form.html", context, status=400 if request.method == "POST" else 200)
