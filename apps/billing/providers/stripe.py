"""Stripe behind the provider interface: the SDK's signature-header check on the raw body, one event per delivery."""

from __future__ import annotations

import json

import stripe

from apps.billing import conf, stripe_handlers
from apps.billing.errors import WebhookRejectedError
from apps.billing.providers.base import Handler, InboxEntry, Provider, WebhookRequest


class StripeProvider(Provider):
    name = "stripe"

    def verify(self, request: WebhookRequest) -> list[InboxEntry]:
        secrets = conf.stripe_webhook_secrets()
        if not secrets:
            raise WebhookRejectedError("no webhook secret configured")
        signature = request.headers.get("Stripe-Signature")
        if not signature:
            raise WebhookRejectedError("unsigned")
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise WebhookRejectedError("malformed body") from exc
        # The SDK's header check only (HMAC over "t.body", any v1 entry, 300 s tolerance): building
        # a stripe.Event costs ~50x more and is not needed to store the event.
        last = ""
        for secret in secrets:
            try:
                stripe.WebhookSignature.verify_header(text, signature, secret, tolerance=conf.WEBHOOK_TOLERANCE_SECONDS)
                break
            except stripe.SignatureVerificationError as exc:
                last = str(exc)
        else:
            raise WebhookRejectedError(f"signature: {last}")
        try:
            event = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise WebhookRejectedError("malformed JSON") from exc
        if not isinstance(event, dict):
            raise WebhookRejectedError("malformed event")
        event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
        if not (isinstance(event_id, str) and event_id.startswith("evt_") and len(event_id) <= 255):
            raise WebhookRejectedError("malformed event id")
        if not (isinstance(event_type, str) and 0 < len(event_type) <= 100):
            raise WebhookRejectedError("malformed event type")
        if not isinstance(created, int) or isinstance(created, bool):
            raise WebhookRejectedError("malformed event created")
        # The verified raw body is stored as it came (jsonb parses it once more, in PostgreSQL).
        return [InboxEntry(self.name, event_id, event_type, text, created)]

    def handler(self, event_type: str) -> Handler | None:
        # Looked up at call time in the handlers' own table (tests may swap an entry there).
        return stripe_handlers.HANDLERS.get(event_type)
