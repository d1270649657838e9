"""Intake from the attacker's side: only verified, well-formed, small deliveries are stored."""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client, override_settings

from apps.audit.models import AuditEvent
from apps.billing.models import WebhookEvent
from tests.billing.conftest import OLD_SECRET, SECRET, URL, deliver, event, post, sign, subscription

pytestmark = pytest.mark.django_db


def _body() -> str:
    return json.dumps(event("customer.subscription.updated", subscription("cus_acme")))


def _rejections() -> int:
    return AuditEvent.objects.filter(action="billing.webhook_rejected").count()


def test_signed_event_is_stored_once_and_answered_200(django_capture_on_commit_callbacks) -> None:
    client = Client()
    payload = event("customer.subscription.updated", subscription("cus_acme"))
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        first = deliver(client, payload)
        second = deliver(client, payload)  # Stripe retries: same id, fresh signature
    assert first.status_code == 200
    assert second.status_code == 200
    row = WebhookEvent.objects.get()
    assert (row.event_id, row.event_type, row.status) == (payload["id"], payload["type"], "pending")
    assert len(callbacks) == 1  # one enqueue, for the first delivery only


@pytest.mark.parametrize(
    "case",
    ["tampered", "old_timestamp", "wrong_secret", "unsigned", "garbage_header", "not_json", "no_event_id"],
)
def test_forged_stale_unsigned_or_malformed_is_refused_and_nothing_stored(case: str) -> None:
    body = _body()
    signature: str | None = sign(body)
    if case == "tampered":
        body = body.replace('"active"', '"canceled"')
    elif case == "old_timestamp":
        signature = sign(body, timestamp=int(time.time()) - 301)
    elif case == "wrong_secret":
        signature = sign(body, "whsec_attacker_guess")
    elif case == "unsigned":
        signature = None
    elif case == "garbage_header":
        signature = "t=abc,v1=zz"
    elif case == "not_json":
        body = "{not json"
        signature = sign(body)
    elif case == "no_event_id":
        body = json.dumps({"type": "invoice.paid", "created": 1})
        signature = sign(body)
    response = post(Client(), body, signature)
    assert response.status_code == 400
    assert not WebhookEvent.objects.exists()
    assert _rejections() == 1
    audit = AuditEvent.objects.get(action="billing.webhook_rejected")
    assert audit.result == "denied"


def test_rejection_audit_is_rate_limited() -> None:
    client = Client()
    for _ in range(20):
        assert post(client, _body(), sign(_body(), "whsec_wrong")).status_code == 400
    assert _rejections() == 1


def test_rotation_two_v1_values_and_either_secret() -> None:
    client = Client()
    with override_settings(STRIPE_WEBHOOK_SECRETS=[SECRET, OLD_SECRET]):
        body = _body()
        # Stripe signs with both secrets during the rotation window: t=…,v1=<new>,v1=<old>
        timestamp = int(time.time())
        new = sign(body, SECRET, timestamp).split("v1=")[1]
        old = sign(body, OLD_SECRET, timestamp).split("v1=")[1]
        assert post(client, body, f"t={timestamp},v1={old},v1={new}").status_code == 200
        body2 = _body()
        assert post(client, body2, sign(body2, OLD_SECRET)).status_code == 200  # old secret still accepted
    # After the rotation ends the old secret is refused.
    body3 = _body()
    assert post(client, body3, sign(body3, OLD_SECRET)).status_code == 400
    assert WebhookEvent.objects.count() == 2


def test_no_secret_configured_refuses_everything() -> None:
    with override_settings(STRIPE_WEBHOOK_SECRETS=[]):
        body = _body()
        assert post(Client(), body, sign(body)).status_code == 400
    assert not WebhookEvent.objects.exists()


def test_oversized_body_is_413_and_not_stored() -> None:
    payload = event("customer.subscription.updated", subscription("cus_acme", metadata={"pad": "x" * 300_000}))
    response = deliver(Client(), payload)
    assert response.status_code == 413
    assert not WebhookEvent.objects.exists()


def test_get_is_not_allowed() -> None:
    assert Client().get(URL).status_code == 405
