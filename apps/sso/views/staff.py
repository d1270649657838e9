"""Platform staff pages for tenants' SSO (under /platform/sso/tenant-connections/): switch a connection off.

The same page lists the tenants that keep emergency accounts (count, enabled,
last use, an unacknowledged sign-in): staff cannot open them, only see them.

The way back in for a tenant whose IdP locked its administrators out: staff
disable the connection (audited, e-mailed to the tenant's owners), and the
tenant's owners sign in with their password and second factor again.
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from apps.access.decorators import platform_view
from apps.accounts.types import AuthenticatedRequest
from apps.sso import emergency, selectors, services
from apps.sso.forms import StaffDisableForm, add_service_error
from apps.sso.services import SSOInputError


@platform_view
@require_safe
def staff_tenant_connections(request: AuthenticatedRequest) -> HttpResponse:
    """Enabled connections of every tenant (``?q=`` filters by tenant name or slug), platform staff only."""
    query = request.GET.get("q", "")[:100]
    connections = selectors.enabled_tenant_connections(query=query)
    context = {
        "connections": connections,
        "query": query,
        # Which tenants hold emergency accounts, and their last use (#9 asked for this link; #11, item 8).
        "emergency": emergency.tenants_with_accounts(query=query),
    }
    return render(request, "sso/staff_connections.html", context)


@platform_view
@require_http_methods(["GET", "HEAD", "POST"])
def staff_connection_disable(request: AuthenticatedRequest, connection_id: int) -> HttpResponse:
    """Confirm with a reason, then disable a tenant's enabled connection (platform staff only)."""
    connection = selectors.tenant_connection_for_staff(connection_id=connection_id)
    if connection is None:
        raise Http404("No such connection")
    form = StaffDisableForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.connection_staff_disable(
                connection=connection,
                actor=request.user,
                reason=form.cleaned_data["reason"],
            )
        except SSOInputError as exc:
            add_service_error(form, exc)
        else:
            tenant_name = connection.tenant.name if connection.tenant else ""
            messages.success(request, f"“{connection.name}” of {tenant_name} disabled; its owners are being told.")
            return redirect(reverse("platform:sso:staff_connections"))
    context = {"connection": connection, "form": form}
    return render(request, "sso/staff_connection_disable.html", context, status=400 if form.errors else 200)
