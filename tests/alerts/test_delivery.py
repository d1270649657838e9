"""Webhook delivery through a real Celery worker to a real HTTP receiver on loopback.

The receiver answers 500, hangs past the timeout, or answers 200, as each test
plans; the worker retries with growing waits, logs every attempt, and marks a
delivery failed after the last one — nothing is lost: the row stays, visible,
and can be sent again.
"""

from __future__ import annotations

import json
import time

from apps.accounts.services import record_sign_in_failure
from apps.alerts import crypto
from apps.alerts.models import Alert, Delivery, DeliveryAttempt, Metric
from apps.alerts.services import rules
from apps.alerts.services.delivery import delivery_retry
from apps.alerts.tasks import evaluate_tenant
from apps.tenants.models import Membership
from tests.alerts.helpers import threshold_rule


def _setup(cast, url: str, **endpoint) -> str:
    created = rules.endpoint_create(tenant=cast.acme, actor=None, name="receiver", url=url, **endpoint)
    threshold_rule(cast.acme, Metric.SIGN_IN_FAILURES, threshold="1", min_volume=1)
    record_sign_in_failure(identifier=cast.member.email)
    record_sign_in_failure(identifier=cast.member.email)
    return created.secret


def _delivery(wait_for, *statuses: str) -> Delivery:
    return wait_for(
        lambda: Delivery.objects.filter(channel="webhook", status__in=statuses).first(),
        timeout=30,
        message=f"no webhook delivery reached {statuses}",
    )


def test_a_receiver_answering_500_is_retried_with_backoff_until_it_answers(
    cast, celery_worker, wait_for, fast_delivery, receiver
) -> None:
    r = receiver([500, 500, 200])
    secret = _setup(cast, r.url)
    evaluate_tenant.delay(cast.acme.pk)
    delivery = _delivery(wait_for, "delivered")
    assert delivery.attempts == 3
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [(a.ok, a.status_code) for a in attempts] == [(False, 500), (False, 500), (True, 200)]
    assert "HTTP 500" in attempts[0].error
    gaps = [b.at - a.at for a, b in zip(r.received, r.received[1:], strict=False)]
    assert gaps[0] >= 0.3 * 0.9
    assert gaps[1] >= 0.6 * 0.9
    # Every attempt carried the same event and a signature the documented recipe accepts.
    assert len({req.headers["Bastion-Event-Id"] for req in r.received}) == 1
    last = r.received[-1]
    assert crypto.verify(last.body, last.headers["Bastion-Signature"], secret)
    body = json.loads(last.body)
    assert body["id"] == str(delivery.event_id)
    assert body["type"] == "alert.opened"
    assert body["alert"]["id"] == Alert.objects.get().pk


def test_a_receiver_that_keeps_failing_ends_failed_and_can_be_sent_again(
    cast, celery_worker, wait_for, fast_delivery, receiver
) -> None:
    r = receiver([500, "hang", 500, 200], hang_seconds=1.5)
    _setup(cast, r.url)
    evaluate_tenant.delay(cast.acme.pk)
    delivery = _delivery(wait_for, "failed")
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.ok for a in attempts] == [False, False, False]
    assert "timed out" in attempts[1].error
    assert delivery.attempts == 3
    assert delivery.last_error
    time.sleep(1.0)  # nothing more is attempted after the last one
    assert DeliveryAttempt.objects.filter(delivery=delivery).count() == 3
    owner = Membership.objects.get(tenant=cast.acme, user=cast.owner)
    delivery_retry(delivery=delivery, actor=owner)  # the admin's "Send again"
    _delivery(wait_for, "delivered")
    assert [a.number for a in DeliveryAttempt.objects.filter(delivery=delivery).order_by("number")] == [1, 2, 3, 4]


def test_evaluating_twice_at_once_opens_one_alert_and_sends_once(
    cast, celery_worker, wait_for, fast_delivery, receiver
) -> None:
    r = receiver([200])
    _setup(cast, r.url)
    evaluate_tenant.delay(cast.acme.pk)
    evaluate_tenant.delay(cast.acme.pk)
    _delivery(wait_for, "delivered")
    time.sleep(1.5)  # let the second run finish, whichever way it went (skipped the locked rule, or counted)
    assert Alert.objects.count() == 1
    assert Delivery.objects.count() == 1
    assert len(r.received) == 1


def test_the_endpoint_address_is_checked_again_at_delivery(
    cast, celery_worker, wait_for, fast_delivery, receiver
) -> None:
    r = receiver([200])
    _setup(cast, r.url)
    fast_delivery.ALERTS_WEBHOOK_ALLOW_LOOPBACK = False  # production again: loopback is refused
    evaluate_tenant.delay(cast.acme.pk)
    delivery = _delivery(wait_for, "failed")
    assert "private or reserved" in delivery.last_error or "plain http" in delivery.last_error
    assert r.received == []
