"""The one view marker the ground floor owns: ``public_view``.

A pure marker (it touches no app), so ``core``'s own health endpoints can carry
it; the access app's ``decorators`` module re-exports it beside
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
