"""RFC 9457 problem details: every error the runtime API returns has this one shape.

``type`` is a stable URI per kind of problem (relative to the API, resolvable
in the API reference), ``title`` a short fixed sentence, ``status`` the HTTP
status, ``detail`` what went wrong in this request, and ``request_id`` the id
the logs and the audit trail carry. Extension members (``errors`` for a 422)
are listed in the OpenAPI document. Nothing in a problem echoes a value the
caller sent: ids and bodies may carry secrets, and a 404 must not confirm
anything about another tenant.
"""

from __future__ import annotations

import json
from typing import Any

from django.http import HttpResponse

from apps.core import context

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "https://bastion.dev/problems/"

TITLES: dict[int, str] = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal error",
    503: "Service unavailable",
}


class ApiProblem(Exception):  # noqa: N818  # a problem document, not an error of ours
    """Raised by an endpoint (or the machinery around it) to answer with a problem document."""

    def __init__(
        self,
        status: int,
        slug: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.slug = slug
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}


def problem_response(problem: ApiProblem) -> HttpResponse:
    """The problem as an ``application/problem+json`` response with its headers."""
    body: dict[str, Any] = {
        "type": TYPE_BASE + problem.slug,
        "title": TITLES.get(problem.status, "Error"),
        "status": problem.status,
        "detail": problem.detail,
        "request_id": context.current().request_id,
        **problem.extra,
    }
    response = HttpResponse(
        json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        status=problem.status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
    for name, value in problem.headers.items():
        response[name] = value
    return response


def problem(status: int, slug: str, detail: str, **kwargs: Any) -> HttpResponse:
    """Shorthand: ``problem_response(ApiProblem(...))``."""
    return problem_response(ApiProblem(status, slug, detail, **kwargs))
