"""Dashboard cards: how other apps put a card on the tenant dashboard.

A face. ``tenants`` sits below the apps that own most of what a dashboard shows
(break-glass, billing, keys, alerts), so it may not import them; instead each app
offers card functions in its own ``dashboard`` module and ``settings.TENANT_DASHBOARD_CARDS``
names them, in the order the page shows them (like ``TENANT_ENTRY_CHECKS``).

A card function takes the ``TenantRequest`` and returns a :class:`Card` or ``None``
(nothing to show, or the member may not see it). It asks ``request.can`` itself and
calls its app's selectors; it must stay cheap (one or two indexed queries), because
every dashboard view runs all of them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from apps.access.decorators import TenantRequest


@dataclass(frozen=True)
class Card:
    """One dashboard card: the template that renders it and that template's context.

    ``attention`` puts the card in the top row (something waits for the viewer: an
    elevation to approve, a failed payment, an overdue credential, an open alert).
    """

    template: str
    context: dict[str, Any] = field(default_factory=dict)
    attention: bool = False


CardFunction = Callable[["TenantRequest"], Card | None]


@functools.cache
def card_functions() -> tuple[CardFunction, ...]:
    names: Sequence[str] = getattr(settings, "TENANT_DASHBOARD_CARDS", None) or ()
    try:
        return tuple(import_string(name) for name in names)
    except ImportError as exc:  # a typo in settings must fail loudly, not hide a card
        raise ImproperlyConfigured(f"TENANT_DASHBOARD_CARDS: {exc}") from exc


@receiver(setting_changed)
def _forget_cards(*, setting: str, **kwargs: Any) -> None:
    if setting == "TENANT_DASHBOARD_CARDS":
        card_functions.cache_clear()


def cards_for(request: TenantRequest) -> list[Card]:
    """The cards this member sees, those asking for attention first (stable order otherwise)."""
    shown = [card for function in card_functions() if (card := function(request)) is not None]
    return sorted(shown, key=lambda card: not card.attention)
