"""Calls from Bastion to Stripe's API (Checkout and Customer Portal sessions, payment methods).

One ``StripeClient`` per call, built from settings at call time: no key (the embedded
default) means ``None`` and the pages say Stripe is not configured. ``STRIPE_API_BASE``
points the client elsewhere (tests run a loopback fake of the HTTP API; stripe-mock works
too). Every create carries an idempotency key, so a double click or a retried request
returns the session Stripe already made instead of a second one.
"""

from __future__ import annotations

import hashlib
from typing import Any

import stripe
from django.conf import settings

from apps.billing.errors import BillingError

# Seconds per call: a slow Stripe must not hold a console request (or a worker) for the SDK's 80 s default.
TIMEOUT_SECONDS = 15
# Retries the SDK makes itself on network errors and 409/429/5xx, with the same idempotency key.
NETWORK_RETRIES = 2


class StripeUnavailableError(BillingError):
    """Stripe refused or could not be reached; the message is safe to show."""


def configured() -> bool:
    return bool(getattr(settings, "STRIPE_SECRET_KEY", ""))


def client() -> stripe.StripeClient | None:
    """A client for the configured key, or None when no key is configured."""
    key = getattr(settings, "STRIPE_SECRET_KEY", "")
    if not key:
        return None
    base = getattr(settings, "STRIPE_API_BASE", "")
    return stripe.StripeClient(
        key,
        base_addresses={"api": base.rstrip("/")} if base else None,
        max_network_retries=NETWORK_RETRIES,
        http_client=stripe.new_default_http_client(timeout=TIMEOUT_SECONDS),
    )


def idempotency_key(*parts: Any) -> str:
    """A stable key for one intent (Stripe keeps keys for 24 h; ours are namespaced by tenant)."""
    return "bastion-" + hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:48]


def _required() -> stripe.StripeClient:
    api = client()
    if api is None:
        raise StripeUnavailableError("Stripe is not configured on this installation (no STRIPE_SECRET_KEY).")
    return api


def _call(what: str, function: Any, params: dict[str, Any], key: str) -> Any:
    try:
        return function(params, {"idempotency_key": key})
    except stripe.StripeError as exc:
        # The user-facing message only: Stripe's text can name our request, never a secret of ours.
        detail = getattr(exc, "user_message", None) or "Stripe did not accept the request"
        raise StripeUnavailableError(f"Could not {what}: {detail}.") from exc


# Where Checkout and Customer Portal sessions live. A session URL elsewhere is refused (the
# browser is never sent to an origin the API answer made up), and the billing page's CSP
# ``form-action`` allows exactly these (Chromium holds a form's redirect to that directive).
STRIPE_PAGE_ORIGINS = ("https://checkout.stripe.com", "https://billing.stripe.com")


def _session_url(session: Any) -> str:
    url = str(getattr(session, "url", "") or "")
    if not any(url.startswith(origin + "/") for origin in STRIPE_PAGE_ORIGINS):
        raise StripeUnavailableError("Stripe answered without a valid session link; try again.")
    return url


def checkout_session_create(*, params: dict[str, Any], key: str) -> tuple[str, str]:
    """Create a Checkout Session; returns (session id, its https URL)."""
    session = _call("start Stripe Checkout", _required().v1.checkout.sessions.create, params, key)
    return str(session.id), _session_url(session)


def portal_session_create(*, params: dict[str, Any], key: str) -> tuple[str, str]:
    """Create a Customer Portal session; returns (session id, its https URL)."""
    session = _call("open the Stripe customer portal", _required().v1.billing_portal.sessions.create, params, key)
    return str(session.id), _session_url(session)


def payment_method_get(payment_method_id: str) -> dict[str, Any] | None:
    """The payment method as a plain dict, or None without a key. Raises StripeUnavailableError."""
    api = client()
    if api is None:
        return None
    try:
        method = api.v1.payment_methods.retrieve(payment_method_id)
    except stripe.StripeError as exc:
        raise StripeUnavailableError(
            f"Could not read payment method {payment_method_id}: {exc.__class__.__name__}"
        ) from exc
    return method.to_dict()


def subscription_item_id(subscription_id: str) -> str:
    """The first item of a subscription, re-read from Stripe (the mirror may lag behind a change)."""
    try:
        sub = _required().v1.subscriptions.retrieve(subscription_id)
    except stripe.StripeError as exc:
        raise StripeUnavailableError("Could not read the subscription at Stripe; try again.") from exc
    items = (sub.to_dict().get("items") or {}).get("data") or []
    if not items or not items[0].get("id"):
        raise StripeUnavailableError("The subscription at Stripe has no item to change.")
    return str(items[0]["id"])
