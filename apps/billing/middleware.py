"""Payment-provider webhooks skip the console's middleware, as runtime API calls do.

A webhook carries a signature, never a session cookie or a CSRF token: sessions,
CSRF, authentication, allauth, the sign-in policy, MFA enrolment, messages and htmx
have nothing to do for it, and together they cost as much as the intake itself
(benchmarks/bench_webhooks.py). Placed right after ``ApiShortcutMiddleware`` (so the
request id, access line, security, CSP and Permissions-Policy headers still apply),
it hands a request for a view marked ``webhook_face`` straight to that view; anything
else goes down the full chain.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

PREFIX = "/billing/webhooks/"


class WebhookShortcutMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path_info.startswith(PREFIX):
            return self.get_response(request)
        try:
            match = resolve(request.path_info)
        except Resolver404:
            return self.get_response(request)
        if not getattr(match.func, "webhook_face", False):
            return self.get_response(request)
        request.resolver_match = match
        response = match.func(request, *match.args, **match.kwargs)
        response.headers.setdefault("X-Frame-Options", "DENY")
        return response
