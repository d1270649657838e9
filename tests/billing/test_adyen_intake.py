"""Adyen intake: Adyen's own HMAC test vectors, then the endpoint from the attacker's side."""

from __future__ import annotations

import json
import socket

import pytest
from django.test import Client, override_settings

from apps.audit.models import AuditEvent
from apps.billing.models import WebhookEvent
from apps.billing.providers.adyen import sign, signing_string
from tests.billing.adyen_helpers import HMAC_KEY, OLD_HMAC_KEY, URL, basic, item, notification, post

pytestmark = pytest.mark.django_db

# The notification item of Adyen's libraries' HMAC tests (adyen-ruby-api-library
# spec/utils/hmac_validator_spec.rb, adyen-php-api-library tests/Adyen/Util/HmacSignatureTest.php).
DOCUMENTED_ITEM = {
    "pspReference": "7914073381342284",
    "merchantAccountCode": "TestMerchant",
    "merchantReference": "TestPayment-1407325143704",
    "amount": {"value": 1130, "currency": "EUR"},
    "eventCode": "AUTHORISATION",
    "success": "true",
    "paymentMethod": "visa",
}


@pytest.fixture(autouse=True)
def _adyen_key():
    with override_settings(ADYEN_HMAC_KEYS=[HMAC_KEY], ADYEN_BASIC_AUTH=""):
        yield


def _rejections() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="billing.webhook_rejected"))


# --- the algorithm, against Adyen's published values ---------------------------------------------


def test_signing_string_matches_adyens_libraries() -> None:
    # No originalReference: an empty field between two colons.
    assert (
        signing_string(DOCUMENTED_ITEM)
        == "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (HMAC_KEY, "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="),  # Ruby library's vector
        (OLD_HMAC_KEY, "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I="),  # PHP library's vector
    ],
)
def test_signature_matches_adyens_published_vectors(key: str, expected: str) -> None:
    assert sign(DOCUMENTED_ITEM, key) == expected
    assert sign(DOCUMENTED_ITEM, key.lower()) == expected  # hex is case-insensitive


def test_the_documented_signed_notification_is_accepted_as_is() -> None:
    body = json.dumps(
        {
            "live": "false",
            "notificationItems": [
                {
                    "NotificationRequestItem": {
                        **DOCUMENTED_ITEM,
                        "additionalData": {"hmacSignature": "coqCmt/IZ4E3CzPvMY8zTjQVL5hYJUiBRg8UU+iCWo0="},
                    }
                }
            ],
        }
    )
    response = post(Client(), body)
    assert response.status_code == 200
    assert response.content == b"[accepted]"
    row = WebhookEvent.objects.get()
    assert (row.provider, row.event_id, row.event_type, row.status) == (
        "adyen",
        "7914073381342284:AUTHORISATION:true",
        "AUTHORISATION",
        "pending",
    )
    assert row.payload["NotificationRequestItem"]["merchantReference"] == "TestPayment-1407325143704"


# --- the endpoint ---------------------------------------------------------------------------------


def test_batch_is_stored_per_item_and_a_redelivery_stores_nothing(django_capture_on_commit_callbacks) -> None:
    client = Client()
    first, second = item(), item(event_code="CAPTURE")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert post(client, notification(first, second)).content == b"[accepted]"
        again = post(client, notification(first, second))  # Adyen retries until it sees [accepted]
    assert again.status_code == 200
    assert again.content == b"[accepted]"
    assert WebhookEvent.objects.filter(provider="adyen").count() == 2
    assert len(callbacks) == 2  # one enqueue per stored item, none for the redelivery


def test_success_true_and_false_are_distinct_events() -> None:
    psp = "8815999999999999"
    post(Client(), notification(item(psp=psp, success="false")))
    post(Client(), notification(item(psp=psp, success="true")))
    assert set(WebhookEvent.objects.values_list("event_id", flat=True)) == {
        f"{psp}:AUTHORISATION:false",
        f"{psp}:AUTHORISATION:true",
    }


def _tampered() -> str:
    signed = item()
    signed["NotificationRequestItem"]["amount"]["value"] = 1  # after signing
    return notification(signed)


def _forged_batch() -> str:
    forged = item(key=None)
    forged["NotificationRequestItem"]["additionalData"]["hmacSignature"] = (
        "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I="
    )
    return notification(item(), forged)  # one good item does not carry a forged one


@pytest.mark.parametrize(
    ("case", "body"),
    [
        ("tampered amount", _tampered),
        ("wrong key", lambda: notification(item(key=OLD_HMAC_KEY))),
        ("unsigned", lambda: notification(item(key=None))),
        ("forged item in a batch", _forged_batch),
        ("not json", lambda: "{not json"),
        ("no items", lambda: json.dumps({"live": "false", "notificationItems": []})),
        ("item without wrapper", lambda: json.dumps({"notificationItems": [item()["NotificationRequestItem"]]})),
        ("bad success", lambda: notification(item(success="maybe"))),
        ("bad eventDate", lambda: notification(item(eventDate="yesterday"))),
        ("empty body", lambda: ""),
        ("deeply nested", lambda: "[" * 100_000 + "]" * 100_000),
        ("items not a list", lambda: json.dumps({"notificationItems": {"a": 1}})),
        ("body not an object", lambda: json.dumps([1, 2])),
    ],
)
def test_forged_or_malformed_is_400_nothing_stored_and_audited(case: str, body) -> None:
    response = post(Client(), body())
    assert response.status_code == 400, case
    assert not WebhookEvent.objects.exists()
    [audit] = _rejections()
    assert (audit.result, audit.target_id, audit.metadata["provider"]) == ("denied", "adyen", "adyen")


def test_rejection_audit_is_rate_limited_per_provider_and_source() -> None:
    client = Client()
    for _ in range(15):
        assert post(client, notification(item(key=OLD_HMAC_KEY))).status_code == 400
    assert len(_rejections()) == 1
    # Stripe's rejections from the same address are their own record.
    assert client.post("/billing/webhooks/stripe/", data="{}", content_type="application/json").status_code == 400
    assert sorted(a.target_id for a in _rejections()) == ["adyen", "stripe"]


def test_key_rotation_accepts_either_key_then_only_the_new_one() -> None:
    client = Client()
    with override_settings(ADYEN_HMAC_KEYS=[HMAC_KEY, OLD_HMAC_KEY]):
        assert post(client, notification(item(key=OLD_HMAC_KEY))).status_code == 200
        assert post(client, notification(item(key=HMAC_KEY))).status_code == 200
    assert post(client, notification(item(key=OLD_HMAC_KEY))).status_code == 400
    assert WebhookEvent.objects.count() == 2


@pytest.mark.parametrize("keys", [[], ["not-hex"]])
def test_no_usable_key_refuses_everything(keys: list[str]) -> None:
    with override_settings(ADYEN_HMAC_KEYS=keys):
        assert post(Client(), notification(item())).status_code == 400
    assert not WebhookEvent.objects.exists()
    assert "not-hex" not in json.dumps(_rejections()[0].metadata)  # a key never reaches the audit log


def test_basic_auth_when_configured() -> None:
    client = Client()
    with override_settings(ADYEN_BASIC_AUTH="adyen-user:s3cret-pass"):
        assert post(client, notification(item())).status_code == 400
        assert post(client, notification(item()), HTTP_AUTHORIZATION=basic("adyen-user:wrong")).status_code == 400
        assert post(client, notification(item()), HTTP_AUTHORIZATION="Basic !!!").status_code == 400
        good = post(client, notification(item()), HTTP_AUTHORIZATION=basic("adyen-user:s3cret-pass"))
    assert good.status_code == 200
    assert WebhookEvent.objects.count() == 1


def test_oversized_body_is_413_and_not_stored() -> None:
    big = item(additionalData={"pad": "x" * 300_000})
    assert post(Client(), notification(big)).status_code == 413
    assert not WebhookEvent.objects.exists()


def test_get_is_not_allowed() -> None:
    assert Client().get(URL).status_code == 405


@pytest.mark.parametrize("path", [URL, "/billing/webhooks/stripe/"])
def test_a_declared_oversized_body_is_refused_before_it_is_sent(live_server, path: str) -> None:
    """413 on the Content-Length alone: the server answers without waiting for the 10 MB it was promised."""
    host, port = live_server.thread.host, live_server.thread.port
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 * 1024 * 1024}\r\nConnection: close\r\n\r\n{{".encode()
        )
        sock.settimeout(5)  # if the view read the body first, this would time out
        answer = sock.recv(200)
    assert answer.startswith(b"HTTP/1.1 413")
    assert not WebhookEvent.objects.exists()
