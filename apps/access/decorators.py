"""One way for a view to declare what it needs: ``tenant_view`` and ``platform_view``.

``tenant_view(permission)`` is the one tenant entry. It resolves the tenant once
from the URL slug and the user's membership (one query), answers 404 to
outsiders (unknown slug and non-member look the same), runs the entry steps
(``TENANT_ENTRY_CHECKS``), refuses writes while the tenant is suspended, answers
403 to members without the permission, and hands the view a ``TenantRequest``.
No middleware resolves the membership again. A test walks every URL pattern and
fails on a tenant view without it.

Entry steps are plug-ins named in settings, like Django's authentication
backends: ``TENANT_ENTRY_CHECKS = ["apps.sso.views.entry.sso_boundary"]``. The
SSO boundary (a session from tenant A's IdP never opens tenant B's console)
is the first; break-glass and billing gates join the same list. ``access``
sits below ``sso`` and must not import it: the settings make the wiring, and
a missing setting fails closed (``ImproperlyConfigured`` on the first request)
rather than silently skipping the boundary.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.module_loading import import_string

from apps.access.decisions import Scope, authorize, can
from apps.access.permissions import OBJECT_ACTIONS, require_known
from apps.accounts.types import AuthenticatedRequest
from apps.core import context
from apps.core.decorators import public_view
from apps.core.htmx import HtmxHttpRequest
from apps.tenants.models import Membership, Tenant
from apps.tenants.selectors import membership_for_console

View = Callable[..., HttpResponse]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# ``public_view`` is a pure marker owned by ``core`` (its health endpoints use it); every face takes it from here.
__all__ = ["EntryCheck", "TenantRequest", "platform_view", "public_view", "tenant_view"]


class Can(Protocol):
    """``request.can``: ``decisions.can`` for the request's membership and tenant (same keywords)."""

    def __call__(
        self, action: str, resource: Any = None, *, for_reading: bool = False, scope: Scope = "tenant"
    ) -> bool: ...


class TenantRequest(HtmxHttpRequest, AuthenticatedRequest):
    """The request a ``tenant_view`` hands its view (for type hints only; no instance is ever made).

    ``tenant`` and ``membership`` are the ones resolved at entry (the membership
    is active, its tenant loaded). ``can(action, resource=None)`` answers "may
    this member do that?" to decide which controls to offer (the target view
    enforces the permission itself): it is ``decisions.can`` for this membership,
    so it shares the permission memo the entry check loaded, and does not log a
    denial.
    """

    tenant: Tenant
    membership: Membership
    can: Can


class EntryCheck(Protocol):
    """An entry step: ``None`` lets the request in; a response (a redirect, a refusal) answers instead."""

    def __call__(self, request: TenantRequest) -> HttpResponse | None: ...


@functools.cache
def entry_checks() -> tuple[EntryCheck, ...]:
    """The entry steps named in ``settings.TENANT_ENTRY_CHECKS``, imported once per process."""
    names: Sequence[str] | None = getattr(settings, "TENANT_ENTRY_CHECKS", None)
    if names is None:
        # Fail closed: without the setting the SSO boundary would silently not apply.
        raise ImproperlyConfigured("TENANT_ENTRY_CHECKS is not set (an empty list says 'no entry steps')")
    return tuple(import_string(name) for name in names)


@receiver(setting_changed)
def _forget_entry_checks(*, setting: str, **kwargs: Any) -> None:
    if setting == "TENANT_ENTRY_CHECKS":
        entry_checks.cache_clear()


def _can_for(membership: Membership, tenant: Tenant) -> Can:
    # ``decisions.can`` for this member: the membership's permission memo, never logged.
    return functools.partial(can, membership, tenant=tenant)


def tenant_view(permission: str, *, scope: Scope = "tenant") -> Callable[[View], View]:
    """Declare the permission a tenant page needs (the module docstring states the 404/403 contract).

    ``scope="any_object"`` is for pages over objects that can also be granted one by one (the
    dataset and tool lists and detail pages): the page opens for a member who holds ``permission``
    tenant-wide or on at least one object of the tenant; the list then shows only what
    ``restrict()`` lets through, and a detail page checks its object (404 for one the member may
    not see, so its existence is not revealed).
    """
    require_known(permission)
    if scope == "any_object" and permission not in OBJECT_ACTIONS:
        raise ValueError(f"{permission} cannot be granted on an object: scope='any_object' means nothing for it")

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def wrapper(request: HttpRequest, tenant_slug: str, *args: Any, **kwargs: Any) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = membership_for_console(user=request.user, slug=tenant_slug)
            if membership is None:
                raise Http404("No such tenant")
            tenant = membership.tenant
            entered = cast(TenantRequest, request)  # the attributes are set right here
            entered.tenant = tenant
            entered.membership = membership
            entered.can = _can_for(membership, tenant)
            context.update(tenant_id=tenant.pk, tenant_slug=tenant.slug)
            for check in entry_checks():
                answer = check(entered)
                if answer is not None:
                    return answer
            if tenant.is_suspended and request.method not in SAFE_METHODS:
                return render(request, "tenants/suspended.html", {"tenant": tenant}, status=403)
            decision = authorize(
                membership, permission, tenant=tenant, for_reading=request.method in SAFE_METHODS, scope=scope
            )
            if not decision.allowed:
                return render(request, "403.html", {"decision": decision, "permission": permission}, status=403)
            return view(entered, *args, **kwargs)

        wrapper.required_permission = permission  # type: ignore[attr-defined]
        wrapper.permission_scope = scope  # type: ignore[attr-defined]
        wrapper.tenant_entry = True  # type: ignore[attr-defined]  # the URL walk checks every /t/<slug>/ route has it
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
