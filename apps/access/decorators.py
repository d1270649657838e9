"""One way for a view to declare what it needs: ``tenant_view`` and ``platform_view``.

``tenant_view(permission)`` resolves the tenant once from the URL slug and the
user's membership, answers 404 to outsiders (unknown slug and non-member look
the same), 403 to members without the permission, refuses writes while the
tenant is suspended, and types ``request.tenant`` / ``request.membership``.
A test walks every URL pattern and fails on a tenant view without it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.access.catalog import require_known
from apps.access.services import authorize
from apps.core import context
from apps.core.decorators import public_view
from apps.tenants.selectors import membership_for_console

View = Callable[..., HttpResponse]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# ``public_view`` is a pure marker owned by ``core`` (its health endpoints use it); every face takes it from here.
__all__ = ["platform_view", "public_view", "tenant_view"]


def tenant_view(permission: str) -> Callable[[View], View]:
    require_known(permission)

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, tenant_slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = membership_for_console(user=request.user, slug=tenant_slug)
            if membership is None:
                raise Http404("No such tenant")
            tenant = membership.tenant
            request.tenant = tenant  # type: ignore[attr-defined]
            request.membership = membership  # type: ignore[attr-defined]
            context.update(tenant_id=tenant.pk, tenant_slug=tenant.slug)
            if tenant.is_suspended and request.method not in SAFE_METHODS:
                return render(request, "tenants/suspended.html", {"tenant": tenant}, status=403)
            decision = authorize(membership, permission, tenant=tenant, for_reading=request.method in SAFE_METHODS)
            if not decision.allowed:
                return render(request, "403.html", {"decision": decision, "permission": permission}, status=403)
            return view(request, *args, **kwargs)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        return wrapper

    return decorate


def platform_view(view: View) -> View:
    """Platform staff only; everyone else gets 404 (the area's existence is not advertised)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise Http404("Not found")
        return view(request, *args, **kwargs)

    wrapper.required_permission = "platform.staff"  # type: ignore[attr-defined]
    return wrapper
