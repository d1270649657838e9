"""Sign-in policy on every signed-in request: session lifetimes and forced MFA enrolment.

``SessionPolicyMiddleware`` ends a session that outlived its tenants' policy
(absolute lifetime since sign-in, idle time since the last request), one that
``sign_out_everywhere`` revoked, and a password session of someone who must now
use SSO or an admin's SSO session without the IdP MFA the policy now requires
(``policy.session_refusal``). ``MFAEnrolmentMiddleware`` keeps a password-signed-in user who must use
MFA and has none on the enrolment pages until they have enrolled.

A face of the sign-in policy (``apps.sso.policy``), so it lives with the policy
and not in ``accounts`` (which sits below ``sso``). The tenant boundary is not
here: it is a step of the one tenant entry (``apps.sso.views.entry``), which
resolves the membership once.

Both sit after the message middleware (they leave a message for the next page).
The policy is re-read at most once a minute per session, and the last-activity
time is written at most once a minute too (more often for idle limits under ten
minutes), so a busy session does not cost a session write and policy queries on
every request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import resolve_url
from django.urls import Resolver404, resolve, reverse
from django.utils.http import urlencode

from apps.accounts import services
from apps.sso import policy
from apps.sso.services import pending_link_for

# How stale the cached policy and the last-activity time may be, in seconds.
RECHECK_SECONDS = 60
MFA_FACTORS = ["totp", "webauthn"]
# What a user who must enrol in MFA may still open: the enrolment pages (and
# allauth's re-authentication in front of them), sign-out and health checks.
ENROLMENT_URL_NAMES = frozenset(
    {
        "mfa_index",
        "mfa_activate_totp",
        "mfa_add_webauthn",
        "mfa_reauthenticate",
        "account_reauthenticate",
        "account_logout",
        "mfa_view_recovery_codes",
        "mfa_generate_recovery_codes",
        "mfa_download_recovery_codes",
        "healthz",
        "readyz",
    }
)
ENROLMENT_URL_NAME = "mfa_activate_totp"


class PolicyRequest(HttpRequest):
    """A request that passed ``MFAEnrolmentMiddleware`` (for type hints only)."""

    bastion_mfa_enrolment_required: bool


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _redirect(request: HttpRequest, url: str) -> HttpResponse:
    """A redirect that also works for htmx requests (which would otherwise swap the target page in)."""
    if _is_htmx(request):
        response = HttpResponse(status=204)
        response["HX-Redirect"] = url
        return response
    return HttpResponseRedirect(url)


def _minutes(value: float) -> str:
    minutes = round(value)
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


class SessionPolicyMiddleware:
    """End sessions past their absolute or idle limit, revoked ones, and password sessions SSO now forbids."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session"):
            response = self._check(request, user)
            if response is not None:
                return response
        return self.get_response(request)

    def _check(self, request: HttpRequest, user: Any) -> HttpResponse | None:
        now = time.time()
        clock = request.session.get(services.SESSION_CLOCK_KEY)
        if not isinstance(clock, dict) or not isinstance(clock.get("start"), int | float):
            # A session from before this middleware (or a login outside the usual
            # paths): its clock starts now.
            clock = {"start": now, "seen": now, "checked": 0.0}
        revoked = user.sessions_revoked_at
        if revoked is not None and clock["start"] < revoked.timestamp():
            return self._expire(request, "revoked", "You were signed out of all your sessions. Sign in again.")
        refresh = now - float(clock.get("checked") or 0.0) >= RECHECK_SECONDS
        if refresh:
            clock["absolute"], clock["idle"] = policy.session_limits_for(user)
        absolute, idle = int(clock["absolute"]), int(clock["idle"])
        if now - clock["start"] > absolute * 60:
            return self._expire(
                request,
                "absolute",
                f"Your session ended: sessions last at most {_minutes(absolute)}. Sign in again.",
                {"absolute_minutes": absolute},
            )
        if now - float(clock.get("seen") or clock["start"]) > idle * 60:
            return self._expire(
                request,
                "idle",
                f"Your session ended after {_minutes(idle)} without activity. Sign in again.",
                {"idle_minutes": idle},
            )
        if refresh:
            # The same rule a policy change applies to every open session at once (policy.sessions_enforce_policy).
            # A password sign-in that confirms a pending SSO link lives until that link is made
            # (at most the pending record's ten minutes), then this rule ends it.
            refusal = policy.session_refusal(
                user,
                sign_in=services.session_sign_in(request),
                sso=request.session.get(policy.SESSION_SSO_KEY),
                pending_link=pending_link_for(request, user) is not None,
            )
            if refusal is not None:
                return self._expire(request, refusal.reason, refusal.message, refusal.detail)
            clock["checked"] = now
        # Last activity is written at a resolution of a tenth of the idle limit (at
        # most a minute), so a session never ends more than 10% early.
        if refresh or now - float(clock.get("seen") or 0.0) >= min(RECHECK_SECONDS, idle * 6):
            clock["seen"] = now
            request.session[services.SESSION_CLOCK_KEY] = clock
        return None

    def _expire(
        self, request: HttpRequest, reason: str, message: str, metadata: dict[str, Any] | None = None
    ) -> HttpResponse:
        services.session_expire(request, reason=reason, metadata=metadata)
        messages.info(request, message)
        login_url = resolve_url(settings.LOGIN_URL)
        if request.method == "GET" and not _is_htmx(request):
            login_url = f"{login_url}?{urlencode({'next': request.get_full_path()})}"
        return _redirect(request, login_url)


class MFAEnrolmentMiddleware:
    """After a password sign-in, a user who must use MFA and has none may only enrol (or sign out).

    Sessions signed in through SSO are left alone (their IdP answers for the
    second factor). Sets ``request.bastion_mfa_enrolment_required`` on the
    pages that stay reachable, so they can explain why.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and hasattr(request, "session") and self._must_enrol(request):
            if not self._allowed(request):
                return _redirect(request, reverse(ENROLMENT_URL_NAME))
            # The enrolment page reads it to explain why nothing else opens.
            cast(PolicyRequest, request).bastion_mfa_enrolment_required = True
        return self.get_response(request)

    @staticmethod
    def _must_enrol(request: HttpRequest) -> bool:
        marker = services.session_sign_in(request)
        if marker is None or marker.get("method") != "password" or marker.get("mfa"):
            return False
        now = time.time()
        checked = marker.get("checked")
        # A verdict of "nothing to do" is cached; "must enrol" is re-checked on
        # every request so that finishing enrolment unlocks the console at once.
        if isinstance(checked, int | float) and now - checked < RECHECK_SECONDS:
            return False
        from allauth.mfa.adapter import get_adapter

        must = policy.mfa_required_for(request.user) and not get_adapter().is_mfa_enabled(request.user, MFA_FACTORS)
        if not must:
            marker["checked"] = now
            request.session[services.SESSION_SIGN_IN_KEY] = marker
        return must

    @staticmethod
    def _allowed(request: HttpRequest) -> bool:
        if request.path.startswith(settings.STATIC_URL):
            return True
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return False
        return match.url_name in ENROLMENT_URL_NAMES
