"""Billing settings with their defaults, read at call time so tests can override them."""

from __future__ import annotations

from django.conf import settings


def stripe_webhook_secrets() -> list[str]:
    """Endpoint secrets (``whsec_…``); two during a rotation, the new one first."""
    return [secret for secret in getattr(settings, "STRIPE_WEBHOOK_SECRETS", []) if secret]


def adyen_hmac_keys() -> list[str]:
    """Hex HMAC keys of the Adyen webhook; two during a rotation. Whitespace around each is dropped."""
    return [key.strip() for key in getattr(settings, "ADYEN_HMAC_KEYS", []) if key and key.strip()]


def adyen_basic_auth() -> str:
    """``username:password`` Adyen sends as Basic auth; empty means no Basic auth is required."""
    return str(getattr(settings, "ADYEN_BASIC_AUTH", "") or "")


def webhook_max_bytes() -> int:
    # Stripe event payloads and Adyen batches are a few KiB; 256 KiB leaves room for large invoices.
    return int(getattr(settings, "BILLING_WEBHOOK_MAX_BYTES", 256 * 1024))


def webhook_enqueue_batch_ms() -> float:
    """Window in which stored events' ids are gathered into one processing message (0 = one message each, at once)."""
    return float(getattr(settings, "BILLING_WEBHOOK_ENQUEUE_BATCH_MS", 5.0))


def webhook_max_attempts() -> int:
    return int(getattr(settings, "BILLING_WEBHOOK_MAX_ATTEMPTS", 8))


# Stripe's own default tolerance for the signed timestamp (replays older than this are refused).
WEBHOOK_TOLERANCE_SECONDS = 300
