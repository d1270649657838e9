"""The Django admin behind Bastion's sign-in policy (mounted only when ``ADMIN_ENABLED``).

The admin's own login form is a password-only door: no second factor, no
"platform staff sign in with SSO", no lockout, and the session it makes would
also open ``/platform/``. So its login page never authenticates anyone: it
sends people to the allauth sign-in (where every rule applies) and back, and
the admin admits only a superuser whose session passed that sign-in: an SSO
session, or a password session that proved a second factor and that the
policy still allows a password for.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from apps.accounts.services import SSO_METHODS, session_sign_in
from apps.sso import policy


def session_passed_sign_in_policy(request: HttpRequest) -> bool:
    """Did this session sign in through allauth or SSO with the factors the policy demands of an admin?

    A session without the sign-in record (``force_login``, Django's own admin
    login) never qualifies.
    """
    if not hasattr(request, "session"):
        return False
    marker = session_sign_in(request)
    if marker is None:
        return False
    if marker.get("method") in SSO_METHODS:
        return True
    if marker.get("method") != "password" or not marker.get("mfa"):
        return False
    return policy.password_sign_in_check(request.user) is None


def has_permission(request: HttpRequest) -> bool:
    """Superusers only (not every platform staff member), and only in a session that passed the sign-in policy."""
    user = request.user
    return bool(user.is_active and user.is_superuser and session_passed_sign_in_policy(request))


def login(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
    """Replaces the admin's login form: sign in through allauth, then come back to ``next``.

    Authenticates nobody, whatever is posted. A signed-in user the admin does
    not admit gets 403 (sending them to sign in again would loop).
    """
    target = request.GET.get(REDIRECT_FIELD_NAME) or request.POST.get(REDIRECT_FIELD_NAME) or ""
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False):
        target = ""
    target = target or reverse("admin:index")
    if request.user.is_authenticated:
        if has_permission(request):
            return HttpResponseRedirect(target)
        raise PermissionDenied("The admin is for superusers signed in with single sign-on or with a second factor.")
    return HttpResponseRedirect(f"{resolve_url(settings.LOGIN_URL)}?{urlencode({REDIRECT_FIELD_NAME: target})}")


def install(site: admin.AdminSite) -> None:
    """Put ``site`` behind the sign-in policy (its URLs pick these up when they are built)."""
    site.has_permission = has_permission  # type: ignore[method-assign]
    site.login = login  # type: ignore[method-assign]
