"""The view markers the ground floor owns: ``public_view`` and ``cookieless_view``.

Pure markers (they touch no app), so ``core``'s own health endpoints can carry
them; the access app's ``decorators`` module re-exports ``public_view`` beside
``tenant_view`` and ``platform_view``, where every other face takes it from. The architecture test
walks the URL map and fails on a view that declares nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpResponse

View = Callable[..., HttpResponse]


def public_view(view: View) -> View:
    """Mark a view as deliberately open (health checks, sign-in, invitations)."""
    view.required_permission = "public"  # type: ignore[attr-defined]
    return view


def cookieless_view(view: View) -> View:
    """Mark a view that authenticates each request itself (a bearer token, a signature on the body).

    ``apps.core.middleware.ShortcutMiddleware`` hands requests for such a view, under one of
    ``settings.SHORTCUT_PATH_PREFIXES``, straight to it: no session, CSRF, sign-in or messages
    middleware, which have nothing to do for a request that carries no cookie.
    """
    view.cookieless = True  # type: ignore[attr-defined]
    return view
