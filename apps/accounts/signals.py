"""Audit hooks on Django's and allauth's authentication signals.

Signals only hook third-party flows (Django auth, allauth); our own flows call
services directly.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from apps.accounts import services


@receiver(user_logged_in)
def _on_login(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    services.record_sign_in(user=user, method="password", success=True)


@receiver(user_login_failed)
def _on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    services.record_sign_in_failure(identifier=str(credentials.get("email") or credentials.get("username") or ""))


@receiver(user_logged_out)
def _on_logout(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    if user is not None:
        services.record_sign_out(user=user)
