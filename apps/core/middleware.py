"""Request-scoped context: a request id on every request, log line and audit event."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable

from csp.middleware import CSPMiddleware as _LibraryCSPMiddleware
from csp.middleware import PolicyParts
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.urls import Resolver404, resolve

from apps.core import context

# An incoming X-Request-ID is kept only if it looks like an id, so a caller
# cannot inject arbitrary text into logs and audit rows.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
MAX_USER_AGENT = 512
# Probes hit these every few seconds; their access lines are DEBUG so they do not drown the log.
QUIET_PATHS = frozenset({"/healthz", "/readyz"})

access_logger = logging.getLogger("bastion.access")


def client_ip(request: HttpRequest) -> str | None:
    """The client address as seen by this process (REMOTE_ADDR).

    Behind a proxy, run the WSGI server with the proxy's forwarded-for support
    (e.g. gunicorn --forwarded-allow-ips) rather than trusting the header here.
    """
    return request.META.get("REMOTE_ADDR") or None


class RequestContextMiddleware:
    """Bind request id, IP and user agent for the duration of the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        incoming = request.headers.get("X-Request-ID", "")
        request_id = incoming if _REQUEST_ID_RE.match(incoming) else context.new_request_id()
        started = time.perf_counter()
        with context.bind(
            request_id=request_id,
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:MAX_USER_AGENT],
        ):
            response = self.get_response(request)
            response["X-Request-ID"] = request_id
            # Inside the bound context, so the line carries request id, tenant and user.
            _access_log(request, response, (time.perf_counter() - started) * 1000)
        return response


def _access_log(request: HttpRequest, response: HttpResponse, duration_ms: float) -> None:
    """One line per request (method, path, status, duration). The query string is left out: it may hold secrets."""
    level = logging.DEBUG if request.path in QUIET_PATHS else logging.INFO
    if not access_logger.isEnabledFor(level):
        return
    access_logger.log(
        level,
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path[:2048],
            "status": response.status_code,
            "duration_ms": round(duration_ms, 1),
        },
    )


class UserContextMiddleware:
    """Add the authenticated user to the context once authentication has run."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            context.update(user_id=user.pk, user_display=user.email)
        return self.get_response(request)


class CSPMiddleware(_LibraryCSPMiddleware):
    """django-csp's middleware, with a fresh nonce in every policy.

    The library puts a nonce into the header only when a template asked for one,
    so the header's shape would depend on which template rendered (an htmx
    fragment, a JSON error). Always minting one keeps every response's policy the
    same shape, and a nonce nobody used allows nothing.
    """

    def get_policy_parts(
        self, request: HttpRequest, response: HttpResponseBase, report_only: bool = False
    ) -> PolicyParts:
        self._make_nonce(request)
        return super().get_policy_parts(request, response, report_only)


class ShortcutMiddleware:
    """Requests for ``cookieless_view`` views skip the console's middleware.

    A runtime API call carries a bearer token and a payment webhook a signature, never a session
    cookie: sessions, CSRF, authentication, allauth, the sign-in policy, MFA enrolment, messages
    and htmx have nothing to do for them, yet together they cost more than the work itself
    (benchmarks/bench_api.py, bench_webhooks.py). Placed right after the security, CSP and
    Permissions-Policy middleware (so those headers, the request id and the access line still
    apply), it hands a request under one of ``settings.SHORTCUT_PATH_PREFIXES`` whose view is
    marked ``cookieless`` straight to that view; anything else goes down the full chain.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.prefixes = tuple(getattr(settings, "SHORTCUT_PATH_PREFIXES", ()))

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(self.prefixes):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if not getattr(match.func, "cookieless", False):
            return self.get_response(request)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
