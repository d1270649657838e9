"""Adyen events through the same inbox and task as Stripe's, on the real broker and worker."""

from __future__ import annotations

import http.client
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client, override_settings

from apps.audit.models import AuditEvent
from apps.billing.models import ProviderPayment, WebhookEvent
from apps.billing.providers.adyen import sign
from tests.billing.adyen_helpers import HMAC_KEY, URL, item, notification, post

pytestmark = pytest.mark.celery


@pytest.fixture(autouse=True)
def _adyen_key():
    with override_settings(ADYEN_HMAC_KEYS=[HMAC_KEY], ADYEN_BASIC_AUTH=""):
        yield


def _finished(event_id: str) -> WebhookEvent | None:
    return WebhookEvent.objects.filter(event_id=event_id).exclude(status__in=["pending", "failed"]).first()


def _deliver(*items) -> list[str]:
    assert post(Client(), notification(*items)).content == b"[accepted]"
    return [
        f"{i['NotificationRequestItem']['pspReference']}:{i['NotificationRequestItem']['eventCode']}:"
        f"{i['NotificationRequestItem']['success']}"
        for i in items
    ]


def test_authorisation_records_the_payment_for_its_tenant(cast, celery_worker, wait_for) -> None:
    authorised = item(tenant_id=cast.acme.pk)
    [event_id] = _deliver(authorised)
    row = wait_for(lambda: _finished(event_id))
    assert (row.status, row.tenant_id) == ("done", cast.acme.pk)
    payment = ProviderPayment.objects.for_tenant(cast.acme).get()
    assert (payment.provider, payment.amount_minor, payment.currency, payment.authorised) == (
        "adyen",
        1130,
        "EUR",
        True,
    )
    audit = AuditEvent.objects.get(action="billing.payment_authorised")
    assert audit.tenant_id == cast.acme.pk
    assert audit.target_id == str(payment.pk)  # (a 16-digit pspReference may be masked as a card number)


def test_a_refused_authorisation_is_recorded_as_refused(cast, celery_worker, wait_for) -> None:
    [event_id] = _deliver(item(tenant_id=cast.globex.pk, success="false", reason="Refused"))
    assert wait_for(lambda: _finished(event_id)).status == "done"
    payment = ProviderPayment.objects.get()
    assert (payment.tenant_id, payment.authorised) == (cast.globex.pk, False)
    assert AuditEvent.objects.filter(action="billing.payment_refused", tenant=cast.globex).count() == 1


def test_other_event_codes_and_foreign_references_are_stored_and_ignored(cast, celery_worker, wait_for) -> None:
    capture = item(tenant_id=cast.acme.pk, event_code="CAPTURE")
    foreign = item(merchantReference="shop-order-991")  # another integration on the merchant account
    ids = _deliver(capture, foreign)
    rows = [wait_for(lambda event_id=event_id: _finished(event_id)) for event_id in ids]
    assert [r.status for r in rows] == ["ignored", "ignored"]
    assert "no handler" in rows[0].last_error
    assert "not a Bastion payment" in rows[1].last_error
    assert not ProviderPayment.objects.exists()


def test_a_reference_naming_no_tenant_is_refused(cast, celery_worker, wait_for) -> None:
    [event_id] = _deliver(item(tenant_id=999_999))
    assert wait_for(lambda: _finished(event_id)).status == "refused"
    assert not ProviderPayment.objects.exists()
    assert AuditEvent.objects.filter(action="billing.webhook_refused").count() == 1


def test_an_older_event_never_overwrites_a_newer_one(cast, celery_worker, wait_for) -> None:
    now = datetime.now(UTC)
    psp = "9915000000000001"
    newer = item(tenant_id=cast.acme.pk, psp=psp, success="true", when=now)
    older = item(psp=psp, success="false", when=now - timedelta(minutes=5))
    older["NotificationRequestItem"]["merchantReference"] = newer["NotificationRequestItem"]["merchantReference"]
    older["NotificationRequestItem"]["additionalData"]["hmacSignature"] = sign(
        older["NotificationRequestItem"], HMAC_KEY
    )
    for payload in (newer, older):
        [event_id] = _deliver(payload)
        wait_for(lambda event_id=event_id: _finished(event_id))
    assert ProviderPayment.objects.get().authorised is True


def test_same_notification_100_times_concurrently_over_http_has_one_effect(
    cast, celery_worker, wait_for, live_server
) -> None:
    """100 real HTTP deliveries on 16 keep-alive connections: one inbox row, one payment, one audit row."""
    body = notification(item(tenant_id=cast.acme.pk, psp="7700000000000100")).encode()
    host, port = live_server.thread.host, live_server.thread.port

    def deliver_many(n: int) -> list[tuple[int, bytes]]:
        connection = http.client.HTTPConnection(host, port, timeout=30)
        answers = []
        for _ in range(n):
            connection.request("POST", URL, body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            answers.append((response.status, response.read()))
        connection.close()
        return answers

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = [a for batch in pool.map(deliver_many, [7] * 12 + [8] * 2) for a in batch]
    assert len(answers) == 100
    assert set(answers) == {(200, b"[accepted]")}
    wait_for(lambda: _finished("7700000000000100:AUTHORISATION:true"))
    time.sleep(0.5)  # room for any (wrong) second task
    assert WebhookEvent.objects.count() == 1
    assert ProviderPayment.objects.count() == 1
    assert AuditEvent.objects.filter(action="billing.payment_authorised").count() == 1
