"""Processing with the real worker on the real broker: exactly one effect, order-safe, tenant-safe."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from apps.audit.models import AuditEvent
from apps.billing import services
from apps.billing.models import StripeCustomer, Subscription, WebhookEvent
from apps.billing.tasks import process_webhook_event
from tests.billing.conftest import checkout, deliver, event, invoice, post, sign, subscription

pytestmark = pytest.mark.celery


def _done(event_id: str) -> WebhookEvent | None:
    return WebhookEvent.objects.filter(event_id=event_id).exclude(status__in=["pending", "failed"]).first()


def _link(tenant, customer: str = "cus_acme") -> StripeCustomer:
    return StripeCustomer.objects.create(tenant=tenant, customer_id=customer)


def test_each_handled_type_end_to_end(cast, celery_worker, wait_for) -> None:
    client = Client()
    now = int(time.time())
    steps = [
        event("checkout.session.completed", checkout("cus_acme", cast.acme.pk), created=now - 50),
        event("customer.subscription.created", subscription("cus_acme", status="incomplete"), created=now - 40),
        event("customer.subscription.updated", subscription("cus_acme", status="active", quantity=7), created=now - 30),
        event("invoice.payment_failed", invoice("cus_acme"), created=now - 20),
        event("invoice.paid", invoice("cus_acme"), created=now - 10),
        event("customer.subscription.deleted", subscription("cus_acme", status="canceled", quantity=7), created=now),
    ]
    for payload in steps:
        assert deliver(client, payload).status_code == 200
        row = wait_for(lambda payload=payload: _done(payload["id"]))
        assert row.status == "done", row.last_error
        assert row.tenant_id == cast.acme.pk
        if payload["type"] == "customer.subscription.updated":
            sub = Subscription.objects.get()
            assert (sub.tenant_id, sub.status, sub.quantity) == (cast.acme.pk, "active", 7)
        if payload["type"] == "invoice.payment_failed":
            assert StripeCustomer.objects.get().delinquent is True
    mapping = StripeCustomer.objects.get()
    assert mapping.tenant_id == cast.acme.pk
    assert mapping.delinquent is False
    assert Subscription.objects.get().status == "canceled"
    actions = list(
        AuditEvent.objects.filter(tenant=cast.acme, action__startswith="billing.").values_list("action", flat=True)
    )
    assert sorted(actions) == sorted(
        ["billing.customer_linked"]
        + ["billing.subscription_synced"] * 3
        + ["billing.payment_failed", "billing.invoice_paid"]
    )


def test_same_event_delivered_100_times_concurrently_has_one_effect(cast, celery_worker, wait_for) -> None:
    _link(cast.acme)
    payload = event("customer.subscription.created", subscription("cus_acme"))
    body = json.dumps(payload)

    def hit(_: int) -> int:
        try:
            return post(Client(), body, sign(body)).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=16) as pool:
        codes = list(pool.map(hit, range(100)))
    assert codes == [200] * 100
    wait_for(lambda: _done(payload["id"]))
    time.sleep(0.5)  # give any (wrong) second task a chance to run
    assert WebhookEvent.objects.count() == 1
    assert Subscription.objects.count() == 1
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == 1


def test_updated_before_created_keeps_the_newer_state(cast, celery_worker, wait_for) -> None:
    _link(cast.acme)
    now = int(time.time())
    newer = event("customer.subscription.updated", subscription("cus_acme", status="active", quantity=5), created=now)
    older = event("customer.subscription.created", subscription("cus_acme", status="incomplete"), created=now - 60)
    client = Client()
    for payload in (newer, older):
        deliver(client, payload)
        wait_for(lambda payload=payload: _done(payload["id"]))
    sub = Subscription.objects.get()
    assert (sub.status, sub.quantity, sub.last_event_created) == ("active", 5, now)


def test_paid_after_failed_and_the_reverse(cast, celery_worker, wait_for) -> None:
    _link(cast.acme)
    now = int(time.time())
    client = Client()
    # Delivered in reverse: the newer "paid" first, then the older "failed": still paid.
    paid = event("invoice.paid", invoice("cus_acme"), created=now)
    failed = event("invoice.payment_failed", invoice("cus_acme"), created=now - 60)
    for payload in (paid, failed):
        deliver(client, payload)
        wait_for(lambda payload=payload: _done(payload["id"]))
    assert StripeCustomer.objects.get().delinquent is False
    # A newer failure after that does mark it delinquent.
    again = event("invoice.payment_failed", invoice("cus_acme", invoice_id="in_2"), created=now + 60)
    deliver(client, again)
    wait_for(lambda: _done(again["id"]))
    assert StripeCustomer.objects.get().delinquent is True


def test_event_for_a_customer_of_another_tenant_is_refused_and_audited(cast, celery_worker, wait_for) -> None:
    _link(cast.acme, "cus_acme")
    client = Client()
    # A subscription on Acme's customer that claims to be Globex's.
    forged = event(
        "customer.subscription.created",
        subscription("cus_acme", metadata={"bastion_tenant": str(cast.globex.pk)}),
    )
    # A checkout by Globex that names Acme's customer.
    hijack = event("checkout.session.completed", checkout("cus_acme", cast.globex.pk))
    for payload in (forged, hijack):
        deliver(client, payload)
        row = wait_for(lambda payload=payload: _done(payload["id"]))
        assert row.status == "refused"
    assert not Subscription.objects.exists()
    assert StripeCustomer.objects.get().tenant_id == cast.acme.pk
    refused = AuditEvent.objects.filter(action="billing.webhook_refused", tenant=cast.acme)
    assert refused.count() == 2
    assert set(refused.values_list("result", flat=True)) == {"denied"}
    assert not AuditEvent.objects.filter(tenant=cast.globex, action__startswith="billing.").exists()


def test_broker_down_rows_stored_and_swept_later(cast, celery_worker, wait_for, monkeypatch) -> None:
    _link(cast.acme)

    def broker_down(*args, **kwargs):
        raise OperationalError("Error 111 connecting to broker. Connection refused.")

    payloads = [event("customer.subscription.created", subscription("cus_acme", sub_id=f"sub_{i}")) for i in range(5)]
    with monkeypatch.context() as patch:
        patch.setattr(process_webhook_event, "apply_async", broker_down)
        for payload in payloads:
            assert deliver(Client(), payload).status_code == 200  # stored before the 2xx
    assert WebhookEvent.objects.filter(status="pending").count() == 5
    time.sleep(0.5)
    assert not Subscription.objects.exists()  # nothing was processed while the broker was down
    # Not yet due: the sweeper leaves rows inside their grace alone.
    assert services.webhooks_sweep() == 0
    # The broker is back; the beat sweeper's next run after the grace re-enqueues them.
    assert services.webhooks_sweep(now=timezone.now() + timedelta(minutes=3)) == 5
    wait_for(lambda: WebhookEvent.objects.filter(status="done").count() == 5)
    assert Subscription.objects.count() == 5


def test_failures_retry_then_dead_letter_and_staff_replay(cast, celery_worker, wait_for, client_for) -> None:
    payload = event("customer.subscription.created", subscription("cus_unknown"))
    with override_settings(BILLING_WEBHOOK_MAX_ATTEMPTS=2):
        deliver(Client(), payload)
        # First attempt fails (unknown customer) and is scheduled with backoff; force the second now.
        wait_for(lambda: WebhookEvent.objects.filter(event_id=payload["id"], status="failed").exists())
        row = WebhookEvent.objects.get()
        assert row.attempts == 1
        assert row.next_attempt_at > timezone.now()
        assert services.webhooks_sweep(now=row.next_attempt_at) == 1
        row = wait_for(lambda: _done(payload["id"]))
    assert row.status == "dead"
    assert "unknown customer" in row.last_error
    assert AuditEvent.objects.filter(action="billing.webhook_dead_lettered").count() == 1

    # Members of a tenant do not even see the page; staff do, with the error.
    assert client_for(cast.owner).get("/platform/billing/webhooks/").status_code == 404
    staff = client_for(cast.staff)
    page = staff.get("/platform/billing/webhooks/")
    assert page.status_code == 200
    assert payload["id"] in page.content.decode()

    _link(cast.acme, "cus_unknown")  # the cause is fixed; replay applies it once
    assert client_for(cast.owner).post(f"/platform/billing/webhooks/{row.pk}/replay/").status_code == 404
    assert staff.post(f"/platform/billing/webhooks/{row.pk}/replay/").status_code == 302
    wait_for(lambda: _done(payload["id"]))
    assert WebhookEvent.objects.get().status == "done"
    assert Subscription.objects.get().tenant_id == cast.acme.pk
    assert AuditEvent.objects.filter(action="billing.webhook_replayed", actor_id=str(cast.staff.pk)).count() == 1


def test_same_second_created_after_updated_and_nothing_after_cancel(cast, celery_worker, wait_for) -> None:
    _link(cast.acme)
    now = int(time.time())
    client = Client()
    updated = event("customer.subscription.updated", subscription("cus_acme", status="active", quantity=3), created=now)
    created = event("customer.subscription.created", subscription("cus_acme", status="incomplete"), created=now)
    deleted = event("customer.subscription.deleted", subscription("cus_acme", status="canceled"), created=now + 1)
    late = event("customer.subscription.updated", subscription("cus_acme", status="active"), created=now + 1)
    for payload in (updated, created):
        deliver(client, payload)
        wait_for(lambda payload=payload: _done(payload["id"]))
    assert Subscription.objects.get().status == "active"
    for payload in (deleted, late):
        deliver(client, payload)
        wait_for(lambda payload=payload: _done(payload["id"]))
    assert Subscription.objects.get().status == "canceled"


def test_a_crash_after_the_effect_leaves_no_trace_and_the_retry_applies_it_once(
    cast, celery_worker, wait_for, monkeypatch
) -> None:
    """A worker dying mid-event: the effect and the "done" mark share one transaction."""
    _link(cast.acme)
    real = services.HANDLERS["customer.subscription.created"]
    calls: list[int] = []

    def crash_once(payload):
        tenant_id = real(payload)  # the effect is written ...
        calls.append(tenant_id)
        if len(calls) == 1:
            raise TimeoutError("worker lost mid-event")  # ... and the process dies before commit
        return tenant_id

    monkeypatch.setitem(services.HANDLERS, "customer.subscription.created", crash_once)
    payload = event("customer.subscription.created", subscription("cus_acme"))
    deliver(Client(), payload)
    row = wait_for(lambda: WebhookEvent.objects.filter(status="failed").first())
    assert not Subscription.objects.exists()  # the first attempt's effect was rolled back
    assert not AuditEvent.objects.filter(action="billing.subscription_synced").exists()
    assert services.webhooks_sweep(now=row.next_attempt_at) == 1
    wait_for(lambda: _done(payload["id"]))
    assert Subscription.objects.count() == 1
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == 1


@pytest.mark.django_db
def test_a_batch_applies_each_event_once_and_isolates_a_failure(cast) -> None:
    """The batch path (sweeper, publisher under load): per-event savepoints, one done mark per effect."""
    _link(cast.acme)
    good = event("customer.subscription.created", subscription("cus_acme", sub_id="sub_batch"))
    unknown = event("customer.subscription.created", subscription("cus_nobody", sub_id="sub_lost"))
    other = event("charge.refund.updated", {"id": "re_1", "object": "refund"})

    def store(payload: dict) -> int:
        body = json.dumps(payload)
        return services.webhook_receive(
            provider="stripe", body=body.encode(), headers={"Stripe-Signature": sign(body)}
        ).pk

    pks = [store(payload) for payload in (good, unknown, other)]
    with override_settings(BILLING_WEBHOOK_ENQUEUE_BATCH_MS=0):
        outcomes = services.webhooks_process_batch(event_pks=[*pks, pks[0], 999_999])
    assert [outcomes[pk].status for pk in pks] == ["done", "failed", "ignored"]
    assert outcomes[pks[1]].retry_in == 30
    assert set(outcomes) == set(pks)  # the repeated id and an unknown one are not claimed twice / at all
    assert Subscription.objects.get().subscription_id == "sub_batch"  # the failure rolled back only its own
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == 1
    failed = WebhookEvent.objects.get(pk=pks[1])
    assert (failed.attempts, "unknown customer" in failed.last_error) == (1, True)
    # Again: finished rows are skipped, the failed one is tried once more (and fails once more).
    again = services.webhooks_process_batch(event_pks=pks)
    assert {pk: o.status for pk, o in again.items()} == {pks[1]: "failed"}
    assert Subscription.objects.count() == 1


def test_the_publisher_gathers_ids_into_batch_messages(cast, celery_worker, wait_for, monkeypatch) -> None:
    """With a window (production), ids stored close together leave as few messages; each event applies once."""
    _link(cast.acme)
    sent: list[int] = []
    real = services._publish

    def spy(pks: list[int]) -> None:
        sent.append(len(pks))
        real(pks)

    monkeypatch.setattr(services, "_publish", spy)
    payloads = [event("customer.subscription.created", subscription("cus_acme", sub_id=f"sub_w{i}")) for i in range(12)]
    with override_settings(BILLING_WEBHOOK_ENQUEUE_BATCH_MS=200):
        client = Client()
        for payload in payloads:
            assert deliver(client, payload).status_code == 200
        wait_for(lambda: WebhookEvent.objects.filter(status="done").count() == 12)
    assert sum(sent) == 12
    assert len(sent) < 12  # gathered: fewer messages than events
    assert Subscription.objects.count() == 12
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == 12
