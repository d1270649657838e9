"""Request-scoped context: a request id on every request, log line and audit event."""

from __future__ import annotations

import re
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from apps.core import context

# An incoming X-Request-ID is kept only if it looks like an id, so a caller
# cannot inject arbitrary text into logs and audit rows.
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
MAX_USER_AGENT = 512


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
        request.request_id = request_id  # type: ignore[attr-defined]
        with context.bind(
            request_id=request_id,
            ip=client_ip(request),
            user_agent=request.headers.get("User-Agent", "")[:MAX_USER_AGENT],
        ):
            response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class UserContextMiddleware:
    """Add the authenticated user to the context once authentication has run."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            context.update(user_id=user.pk, user_display=user.email)
        return self.get_response(request)
