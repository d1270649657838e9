"""The runtime API's requests skip the console's middleware.

An API call carries a bearer token, never a session cookie: sessions, CSRF,
authentication, allauth, the SSO sign-in policy, MFA enrolment, messages and
htmx have nothing to do for it, yet together they cost more than the decision
itself (see benchmarks/bench_api.py). This middleware sits right after the
security, CSP and Permissions-Policy middleware (so API answers keep those
headers and the request id and access line of RequestContextMiddleware) and
hands a request for an ``apps.api`` view straight to that view. Anything else
(the OAuth token endpoint, the console) goes down the full chain as before.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

PREFIX = "/api/v1/"


class ApiShortcutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if not getattr(match.func, "api_face", False):
            return self.get_response(request)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
