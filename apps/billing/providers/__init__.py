"""Payment providers behind one interface (``base.Provider``): Stripe and Adyen share the inbox and the task.

``get(name)`` returns the provider for a URL's or an inbox row's provider name, or None.
"""

from __future__ import annotations

from apps.billing.providers.adyen import AdyenProvider
from apps.billing.providers.base import Ack, Handler, Ignored, InboxEntry, Provider, WebhookRequest
from apps.billing.providers.stripe import StripeProvider

__all__ = ["Ack", "Handler", "Ignored", "InboxEntry", "Provider", "WebhookRequest", "get", "names"]

_PROVIDERS: dict[str, Provider] = {provider.name: provider for provider in (StripeProvider(), AdyenProvider())}


def get(name: str) -> Provider | None:
    return _PROVIDERS.get(name)


def names() -> list[str]:
    return sorted(_PROVIDERS)
