"""Request types for faces that serve a signed-in person (for type hints only)."""

from __future__ import annotations

from django.http import HttpRequest

from apps.accounts.models import User


class AuthenticatedRequest(HttpRequest):
    """A request past a sign-in check (``tenant_view``, ``platform_view``): ``user`` is a ``User``."""

    user: User
