"""Platform staff pages: every tenant of the installation.

Staff only (``platform_view``: others get 404, anonymous users the sign-in
page). Thin: parse, select, call one tenant service, render or redirect.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.access.decorators import platform_view
from apps.accounts.types import AuthenticatedRequest
from apps.core.htmx import render_page
from apps.core.shortcuts import found_or_404
from apps.platform import services as platform_services
from apps.platform.forms import TenantCreateForm, TenantFilterForm, TenantSuspendForm
from apps.tenants import selectors, services
from apps.tenants.models import Tenant
from apps.tenants.services import TenantError

TENANTS_PAGE_SIZE = 25
MEMBERS_PAGE_SIZE = 50


def _tenant_or_404(slug: str) -> Tenant:
    return found_or_404(selectors.tenant_get(slug=slug), "No such tenant")


@platform_view
def tenant_list(request: HttpRequest) -> HttpResponse:
    """Every tenant with member counts (one query a page), searchable by name or slug, filterable by status."""
    filter_form = TenantFilterForm(request.GET)
    tenants = selectors.tenant_list_with_counts(**filter_form.filters())
    page = Paginator(tenants, TENANTS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"filter_form": filter_form, "page": page}
    return render_page(request, "platform/tenant_list.html", context, partial="platform/partials/_tenant_table.html")


@platform_view
@require_http_methods(["GET", "HEAD", "POST"])
def tenant_create(request: AuthenticatedRequest) -> HttpResponse:
    """Create a tenant and invite its first owner by e-mail."""
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant = platform_services.tenant_provision(
                slug=form.cleaned_data["slug"],
                name=form.cleaned_data["name"],
                owner_email=form.cleaned_data["owner_email"],
                actor=request.user,
            )
        except TenantError as exc:
            form.add_error("slug", str(exc))
        else:
            messages.success(
                request, f"{tenant.name} is created; an invitation is on its way to {form.cleaned_data['owner_email']}."
            )
            return redirect("platform:tenant_detail", slug=tenant.slug)
    return render(request, "platform/tenant_form.html", {"form": form}, status=400 if form.errors else 200)


@platform_view
def tenant_detail(request: HttpRequest, slug: str) -> HttpResponse:
    """One tenant: status, member counts and its members (50 a page)."""
    tenant = _tenant_or_404(slug)
    members = selectors.member_list(tenant=tenant)
    page = Paginator(members, MEMBERS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "tenant": tenant,
        "counts": selectors.member_counts(tenant=tenant),
        "page": page,
    }
    return render(request, "platform/tenant_detail.html", context)


@platform_view
@require_http_methods(["GET", "HEAD", "POST"])
def tenant_suspend(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """Suspend a tenant with a reason. GET asks to confirm; POST suspends (audited)."""
    tenant = _tenant_or_404(slug)
    form = TenantSuspendForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.tenant_set_status(
                tenant=tenant,
                suspended=True,
                reason=form.cleaned_data["reason"],
                actor=request.user,
            )
        except TenantError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{tenant.name} is suspended; its console is read-only.")
            return redirect("platform:tenant_detail", slug=tenant.slug)
    context = {"tenant": tenant, "form": form, "suspend": True}
    return render(request, "platform/tenant_status_confirm.html", context, status=400 if form.errors else 200)


@platform_view
@require_http_methods(["GET", "HEAD", "POST"])
def tenant_reactivate(request: AuthenticatedRequest, slug: str) -> HttpResponse:
    """Reactivate a suspended tenant. GET asks to confirm; POST reactivates (audited)."""
    tenant = _tenant_or_404(slug)
    error = ""
    if request.method == "POST":
        try:
            services.tenant_set_status(tenant=tenant, suspended=False, actor=request.user)
        except TenantError as exc:
            error = str(exc)
        else:
            messages.success(request, f"{tenant.name} is active again.")
            return redirect("platform:tenant_detail", slug=tenant.slug)
    context = {"tenant": tenant, "error": error, "suspend": False}
    return render(request, "platform/tenant_status_confirm.html", context, status=400 if error else 200)
