"""One way to answer htmx: the same URL serves the full page or one fragment of it.

django-htmx's middleware puts ``request.htmx`` (an ``HtmxDetails``, true when
htmx sent the request) on every request. Views ask through ``is_htmx`` and
render through ``render_page`` instead of reading the attribute by hand, so
the request needs no ``# type: ignore`` and every page follows the same rules:

- a history restore (htmx re-fetching a page it lost from its cache) gets the
  full page, because htmx swaps it in as the whole ``<body>``;
- a response that can be either body says ``Vary: HX-Request``, so a cache
  never serves the fragment where the page was asked for, or the reverse.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    """A request that passed django-htmx's middleware (for type hints only)."""

    htmx: HtmxDetails


def is_htmx(request: HttpRequest) -> bool:
    """True when htmx sent the request (``HX-Request: true``)."""
    return bool(getattr(request, "htmx", False))


def wants_partial(request: HttpRequest) -> bool:
    """True when the answer should be a fragment: an htmx request that is not a history restore."""
    htmx: HtmxDetails | None = getattr(request, "htmx", None)
    if htmx is None or not htmx:
        return False
    return not htmx.history_restore_request


def render_page(
    request: HttpRequest,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    partial: str | None = "results",
    status: int = 200,
) -> HttpResponse:
    """The full ``template``, or only ``partial`` of it when htmx asks for a fragment.

    ``partial`` names a ``{% partialdef %}`` block of ``template``
    (``template#partial``), or a template of its own when it ends in ``.html``
    (``templates/<app>/partials/_<entity>_<part>.html``). ``None`` always
    renders the full page.
    """
    if partial is None:
        return render(request, template, context, status=status)
    fragment = partial if partial.endswith(".html") else f"{template}#{partial}"
    response = render(request, fragment if wants_partial(request) else template, context, status=status)
    patch_vary_headers(response, ("HX-Request",))
    return response
