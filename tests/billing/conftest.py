"""Stripe webhook helpers: realistic payloads from the shared fixtures, signed with the SDK's header generator."""

from __future__ import annotations

import copy
import json
import time
import uuid
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import stripe
from django.test import Client, override_settings

# CI keeps a copy of shared/ beside the clone (../shared); here it is /work/shared, the same place.
FIXTURES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "stripe" / "openapi-fixtures-subset.json"
)
SECRET = "whsec_test_current_0123456789abcdef"
OLD_SECRET = "whsec_test_previous_0123456789abcdef"
URL = "/billing/webhooks/stripe/"


@cache
def _resources() -> dict[str, Any]:
    return json.loads(FIXTURES.read_text(encoding="utf-8"))["resources"]


def resource(kind: str) -> dict[str, Any]:
    return copy.deepcopy(_resources()[kind])


def event(event_type: str, obj: dict[str, Any], *, created: int | None = None, event_id: str | None = None) -> dict:
    """A Stripe event envelope (the fixture's own event shape) around ``obj``."""
    envelope = resource("event")
    envelope.update(
        id=event_id or f"evt_{uuid.uuid4().hex[:24]}",
        type=event_type,
        created=created if created is not None else int(time.time()),
        data={"object": obj},
        api_version="2025-06-30.basil",
    )
    return envelope


def subscription(customer: str, *, sub_id: str = "sub_test_1", status: str = "active", quantity: int = 1, **extra):
    obj = resource("subscription")
    obj.update(id=sub_id, customer=customer, status=status, metadata=extra.pop("metadata", {}), **extra)
    obj["items"]["data"][0]["quantity"] = quantity
    return obj


def invoice(customer: str, *, invoice_id: str = "in_test_1") -> dict[str, Any]:
    obj = resource("invoice")
    obj.update(id=invoice_id, customer=customer)
    return obj


def checkout(customer: str, tenant_pk: int | str) -> dict[str, Any]:
    obj = resource("checkout.session")
    obj.update(customer=customer, client_reference_id=str(tenant_pk), mode="subscription", status="complete")
    return obj


def sign(body: str, secret: str = SECRET, timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)


def post(client: Client, body: str | bytes, signature: str | None):
    headers = {"HTTP_STRIPE_SIGNATURE": signature} if signature is not None else {}
    return client.post(URL, data=body, content_type="application/json", **headers)


def deliver(client: Client, payload: dict[str, Any], secret: str = SECRET):
    body = json.dumps(payload)
    return post(client, body, sign(body, secret))


@pytest.fixture(autouse=True)
def _webhook_secret():
    with override_settings(STRIPE_WEBHOOK_SECRETS=[SECRET]):
        yield


@pytest.fixture(autouse=True)
def _fresh_cache():
    from django.core.cache import cache as django_cache

    django_cache.clear()  # the rejection audit's rate-limit window
    return
