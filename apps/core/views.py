"""Health endpoints and the console's landing page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from apps.access.decorators import public_view
from apps.core import health
from apps.tenants.selectors import tenants_for_user


@public_view
@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Touches nothing else."""
    return JsonResponse({"status": "ok"})


@public_view
@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: the database and the broker answer; 503 if either does not."""
    checks = health.readiness()
    ok = all(check["ok"] for check in checks.values())
    return JsonResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status=200 if ok else 503)


@public_view
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Send a user to their only tenant, or let them choose."""
    tenants = list(tenants_for_user(user=request.user))
    if len(tenants) == 1 and not request.user.is_staff:
        return redirect("tenants:dashboard", tenant_slug=tenants[0].slug)
    return render(request, "core/home.html", {"tenants": tenants})
