"""The provider interface: verify a raw delivery into normalized inbox entries, name the ack, find handlers.

Every payment provider is one ``Provider``: intake (``services.webhook_receive``) calls
``verify`` on the raw body and headers and stores what it returns in the one inbox
table; processing (``services.webhooks_drain`` and the batch) asks ``handler`` for each stored
row. Nothing here touches the database or Django's request: a provider is protocol
code, testable with bytes and a dict of headers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

# A handler applies one stored event (the row's payload, parsed) inside the transaction that
# marks the row done, and returns the tenant id it applied to (or None).
Handler = Callable[[dict[str, Any]], int | None]


class Ignored(Exception):  # noqa: N818 — an outcome, not an error
    """A handler's answer: the event is verified and stored but not ours to apply (marked ignored, not retried)."""


@dataclass(frozen=True)
class WebhookRequest:
    """What a provider may look at: the raw body and the request headers (case-insensitive mapping)."""

    body: bytes
    headers: Mapping[str, str]


@dataclass(frozen=True)
class InboxEntry:
    """One event, ready for the inbox: unique on (provider, event_id)."""

    provider: str
    event_id: str
    event_type: str
    payload: str  # JSON text stored as the row's payload (jsonb)
    created: int  # the provider's own unix time of the event


@dataclass(frozen=True)
class Ack:
    """The body the provider expects on success (Stripe: anything 2xx; Adyen: ``[accepted]``)."""

    body: str
    content_type: str = "text/plain"


class Provider:
    """Base class of a payment provider; subclasses set ``name`` and ``ack`` and implement the two methods."""

    name: ClassVar[str]
    ack: ClassVar[Ack] = Ack("ok")

    def verify(self, request: WebhookRequest) -> list[InboxEntry]:
        """Authenticate and parse a delivery; raise ``WebhookRejectedError`` unless verified and well-formed."""
        raise NotImplementedError

    def handler(self, event_type: str) -> Handler | None:
        """The handler for a stored event type, or None: the row is then marked ignored."""
        raise NotImplementedError
