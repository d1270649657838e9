"""Break-glass console pages under /t/<tenant>/break-glass/.

Thin: parse, select through the tenant-scoped selectors (another tenant's id
is a 404), call one service, redirect with its message. The rules (self-
approval, eligibility, time limits) live in ``services``; a refused step
changes nothing and says why.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.access.decorators import TenantRequest, tenant_view
from apps.breakglass import selectors, services
from apps.breakglass.forms import DecisionForm, RequestForm
from apps.core.shortcuts import found_or_404


def _home(request: TenantRequest) -> HttpResponse:
    return redirect("breakglass:index", tenant_slug=request.tenant.slug)


@tenant_view("breakglass.request")
def index(request: TenantRequest) -> HttpResponse:
    context = {
        "policies": selectors.requestable_policies(tenant=request.tenant, membership=request.membership),
        "mine": selectors.my_elevations(tenant=request.tenant, membership=request.membership),
        "form": RequestForm(),
        "can_approve": request.can("breakglass.approve"),
    }
    return render(request, "breakglass/index.html", context)


@tenant_view("breakglass.request")
@require_POST
def request_create(request: TenantRequest, policy_id: int) -> HttpResponse:
    policy = found_or_404(selectors.policy_get(tenant=request.tenant, policy_id=policy_id))
    form = RequestForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Give a duration in minutes and a justification.")
        return _home(request)
    try:
        elevation = services.elevation_request(policy=policy, requester=request.membership, **form.cleaned_data)
    except services.BreakglassError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Request #{elevation.pk} sent to the approvers.")
    return _home(request)


@tenant_view("breakglass.approve")
def approvals(request: TenantRequest) -> HttpResponse:
    context = {
        "waiting": selectors.waiting_for(tenant=request.tenant, membership=request.membership),
        "active": selectors.active_elevations(tenant=request.tenant),
        "form": DecisionForm(),
    }
    return render(request, "breakglass/approvals.html", context)


def _decide(request: TenantRequest, pk: int, *, approve: bool) -> HttpResponse:
    elevation = found_or_404(selectors.elevation_get(tenant=request.tenant, elevation_id=pk))
    form = DecisionForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""
    decide = services.elevation_approve if approve else services.elevation_deny
    try:
        decide(tenant=request.tenant, elevation_id=elevation.pk, approver=request.membership, comment=comment)
    except services.BreakglassError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Request #{elevation.pk} {'approved' if approve else 'denied'}.")
    return redirect("breakglass:approvals", tenant_slug=request.tenant.slug)


@tenant_view("breakglass.approve")
@require_POST
def approve(request: TenantRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, approve=True)


@tenant_view("breakglass.approve")
@require_POST
def deny(request: TenantRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, approve=False)


# The requester, an approver of the policy or a member manager may end it: the service decides
# who, so the page only needs a member who can see the console.
@tenant_view("tenant.view")
@require_POST
def end(request: TenantRequest, pk: int) -> HttpResponse:
    elevation = found_or_404(selectors.elevation_get(tenant=request.tenant, elevation_id=pk))
    try:
        services.elevation_end(tenant=request.tenant, elevation_id=elevation.pk, actor=request.membership)
    except services.BreakglassError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Elevation #{elevation.pk} ended; its permissions are gone.")
    target = "breakglass:approvals" if request.POST.get("next") == "approvals" else "breakglass:index"
    return redirect(target, tenant_slug=request.tenant.slug)
