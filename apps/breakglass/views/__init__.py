"""Break-glass console pages under /t/<tenant>/break-glass/.

Thin: parse, select through the tenant-scoped selectors (another tenant's id
is a 404), call one service, redirect with its message. The rules (self-
approval, eligibility, time limits) live in ``services``; a refused step
changes nothing and says why.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from apps.access.decorators import TenantRequest, tenant_view
from apps.access.selectors import role_list
from apps.breakglass import selectors, services
from apps.breakglass.forms import DecisionForm, PolicyForm, RequestForm
from apps.core.shortcuts import found_or_404


def _home(request: TenantRequest) -> HttpResponse:
    return redirect("breakglass:index", tenant_slug=request.tenant.slug)


@tenant_view("breakglass.request")
def index(request: TenantRequest) -> HttpResponse:
    context = {
        "policies": [
            (policy, RequestForm.for_policy(policy))
            for policy in selectors.requestable_policies(tenant=request.tenant, membership=request.membership)
        ],
        "mine": selectors.my_elevations(tenant=request.tenant, membership=request.membership),
        "can_approve": request.can("breakglass.approve"),
        "can_edit_policies": request.can("role.manage"),
        "can_review": request.can("audit.read"),
    }
    return render(request, "breakglass/index.html", context)


@tenant_view("breakglass.request")
@require_POST
def request_create(request: TenantRequest, policy_id: int) -> HttpResponse:
    policy = found_or_404(selectors.policy_get(tenant=request.tenant, policy_id=policy_id))
    form = RequestForm(request.POST)
    if not form.is_valid():
        # Name each field and what is wrong with it; nothing is saved.
        messages.error(
            request,
            " ".join(
                f"{form.fields[name].label or name.capitalize()}: {' '.join(errors)}"
                for name, errors in form.errors.items()
            ),
        )
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
        "can_review": request.can("audit.read"),
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


# --- policies (item 1) ---------------------------------------------------------------------
# The pages open for role.manage; the service also demands breakglass.approve and refuses a
# policy whose role the editor could not hand out, so a form error names what is missing.


def _policy_form(request: TenantRequest, **kwargs: Any) -> PolicyForm:
    return PolicyForm(request.POST or None, roles=role_list(tenant=request.tenant), **kwargs)


def _policies(request: TenantRequest) -> HttpResponse:
    return redirect("breakglass:policy_list", tenant_slug=request.tenant.slug)


@tenant_view("role.manage")
def policy_list(request: TenantRequest) -> HttpResponse:
    context = {
        "policies": selectors.policy_list(tenant=request.tenant),
        "ceiling_hours": services.ceiling_minutes() // 60,
    }
    return render(request, "breakglass/policy_list.html", context)


@tenant_view("role.manage")
def policy_create(request: TenantRequest) -> HttpResponse:
    form = _policy_form(request)
    if request.method == "POST" and form.is_valid():
        try:
            policy = services.policy_create(tenant=request.tenant, actor=request.membership, **form.cleaned_data)
        except services.BreakglassError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Policy “{policy.name}” created.")
            return _policies(request)
    return render(request, "breakglass/policy_form.html", {"form": form, "policy": None})


@tenant_view("role.manage")
def policy_edit(request: TenantRequest, policy_id: int) -> HttpResponse:
    policy = found_or_404(selectors.policy_get(tenant=request.tenant, policy_id=policy_id))
    form = _policy_form(request, initial=PolicyForm.initial_for(policy))
    if request.method == "POST" and form.is_valid():
        try:
            services.policy_update(policy=policy, actor=request.membership, **form.cleaned_data)
        except services.BreakglassError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Policy “{form.cleaned_data['name']}” saved.")
            return _policies(request)
    return render(request, "breakglass/policy_form.html", {"form": form, "policy": policy})


@tenant_view("role.manage")
@require_POST
def policy_pause(request: TenantRequest, policy_id: int) -> HttpResponse:
    """Pause or resume (``paused=1`` / ``0``): a paused policy takes no new requests; open ones are untouched."""
    policy = found_or_404(selectors.policy_get(tenant=request.tenant, policy_id=policy_id))
    paused = request.POST.get("paused", "1") == "1"
    try:
        services.policy_update(policy=policy, actor=request.membership, paused=paused)
    except services.BreakglassError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Policy “{policy.name}” {'paused' if paused else 'resumed'}.")
    return _policies(request)
