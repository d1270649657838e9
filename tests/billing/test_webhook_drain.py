"""Draining a backlog: one task run applies the other waiting rows; their own messages are then one-query no-ops."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.audit.models import AuditEvent
from apps.billing import services
from apps.billing.models import StripeCustomer, Subscription, WebhookEvent
from apps.billing.tasks import process_webhook_event
from tests.billing.conftest import event, sign, subscription


def _store(payload: dict) -> int:
    body = json.dumps(payload)
    intake = services.webhook_receive(provider="stripe", body=body.encode(), headers={"Stripe-Signature": sign(body)})
    assert intake.pk is not None
    return intake.pk


def _backlog(count: int, prefix: str) -> list[int]:
    return [
        _store(event("customer.subscription.created", subscription("cus_acme", sub_id=f"sub_{prefix}{n}")))
        for n in range(count)
    ]


@pytest.mark.django_db
def test_a_message_for_a_finished_row_is_one_query_and_no_effect(cast) -> None:
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    pks = _backlog(3, "noop")  # the test's transaction never commits: no message is sent
    own, others = services.webhooks_drain(event_pk=pks[0])
    assert own.status == "done"
    assert {pk: o.status for pk, o in others.items()} == {pks[1]: "done", pks[2]: "done"}  # drained with it
    assert Subscription.objects.count() == 3
    synced = AuditEvent.objects.filter(action="billing.subscription_synced").count()
    assert synced == 3
    for pk in pks:  # each later message of the backlog
        with CaptureQueriesContext(connection) as queries:
            own, others = services.webhooks_drain(event_pk=pk)
        assert (own.status, others) == ("skipped", {})
        assert len(queries) == 1, [q["sql"] for q in queries]
        assert "FOR UPDATE" not in queries[0]["sql"].upper()  # no claim, no transaction
    with CaptureQueriesContext(connection) as queries:
        assert services.webhooks_drain(event_pk=999_999) == (services.Outcome("skipped"), {})  # unknown id
    assert len(queries) == 1
    assert Subscription.objects.count() == 3
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == synced


@pytest.mark.django_db
def test_draining_takes_pending_rows_but_never_a_failed_row_before_its_backoff(cast, monkeypatch) -> None:
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    real = services.HANDLERS["customer.subscription.created"]

    def failing_for_one(payload: dict) -> int | None:
        if payload["data"]["object"]["id"] == "sub_bad":
            raise RuntimeError("not yet")
        return real(payload)

    monkeypatch.setitem(services.HANDLERS, "customer.subscription.created", failing_for_one)
    bad = _store(event("customer.subscription.created", subscription("cus_acme", sub_id="sub_bad")))
    assert services.webhooks_drain(event_pk=bad)[0].status == "failed"  # backoff: 30 s
    pks = _backlog(45, "many")  # more than two slices
    own, others = services.webhooks_drain(event_pk=pks[-1])
    assert own.status == "done"
    assert set(others) == set(pks[:-1])  # every pending row, the failed one left to its backoff
    assert all(o.status == "done" for o in others.values())
    failed = WebhookEvent.objects.get(pk=bad)
    assert (failed.status, failed.attempts) == ("failed", 1)
    # Its own (retry) message still processes it, past nothing else: a failed row is claimable by its id.
    assert services.webhooks_drain(event_pk=bad)[0].status == "failed"
    assert WebhookEvent.objects.get(pk=bad).attempts == 2
    # A batch message drains too, and reports what it drained.
    more = _backlog(5, "batch")
    outcomes = services.webhooks_process_batch(event_pks=more[:1], drain_seconds=5)
    assert set(outcomes) == set(more)
    assert Subscription.objects.count() == 45 + 5


@pytest.mark.django_db(transaction=True)
def test_two_workers_draining_the_same_backlog_apply_each_event_once(cast, monkeypatch) -> None:
    """Two threads (two connections) drain one backlog at once: SKIP LOCKED splits it, nothing twice."""
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    monkeypatch.setattr(services, "_publish", lambda pks: None)  # a worker outage: rows stored, no message
    pks = _backlog(80, "race")
    real = services.HANDLERS["customer.subscription.created"]
    applied: Counter[str] = Counter()
    lock = threading.Lock()

    def slow(payload: dict) -> int | None:
        time.sleep(0.005)  # keep both drains busy at the same time
        tenant = real(payload)
        with lock:
            applied[payload["id"]] += 1
        return tenant

    monkeypatch.setitem(services.HANDLERS, "customer.subscription.created", slow)
    start = threading.Barrier(2)

    def drain(pk: int) -> set[int]:
        try:
            start.wait(timeout=10)
            own, others = services.webhooks_drain(event_pk=pk, seconds=30)
            return ({pk} if own.status == "done" else set()) | {p for p, o in others.items() if o.status == "done"}
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(drain, [pks[0], pks[40]])
    assert first, "the first drain applied nothing"  # both really took part
    assert second, "the second drain applied nothing"
    assert not first & second  # no event applied by both
    assert first | second == set(pks)
    assert len(applied) == 80
    assert set(applied.values()) == {1}  # each handler ran once, none rolled back and redone
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"done"}
    assert Subscription.objects.count() == 80
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == 80


@pytest.mark.celery
def test_a_backlog_of_one_message_per_event_drains_on_the_real_worker(cast, celery_worker, wait_for) -> None:
    """The real worker on the real broker: per-event messages of a backlog, each event applied once."""
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    original = services._publish
    services._publish = lambda pks: None  # the worker outage: rows stored, messages lost
    try:
        pks = _backlog(40, "worker")
    finally:
        services._publish = original
    for pk in pks:  # the queue after the outage: one message per event
        process_webhook_event.apply_async((pk,), retry=False)
    wait_for(lambda: WebhookEvent.objects.filter(status="done").count() == 40, timeout=60)
    assert Subscription.objects.count() == 40
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == 40


@pytest.mark.django_db
def test_a_failing_event_in_a_slice_runs_its_handler_once_and_rolls_back_only_itself(cast, monkeypatch) -> None:
    """The slice's fast path (one savepoint for all) rolls back on a failure and applies the rest again."""
    from apps.billing.providers import Ignored

    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    real = services.HANDLERS["customer.subscription.created"]
    calls: Counter[str] = Counter()

    def mixed(payload: dict) -> int | None:
        sub_id = payload["data"]["object"]["id"]
        calls[sub_id] += 1
        tenant = real(payload)  # the effect is written before the failure: it must be rolled back
        if sub_id == "sub_mix1":
            raise RuntimeError("boom")
        if sub_id == "sub_mix3":
            raise Ignored("not ours")
        return tenant

    monkeypatch.setitem(services.HANDLERS, "customer.subscription.created", mixed)
    pks = _backlog(5, "mix")
    outcomes = services.webhooks_process_batch(event_pks=pks)
    assert [outcomes[pk].status for pk in pks] == ["done", "failed", "done", "ignored", "done"]
    assert (calls["sub_mix1"], calls["sub_mix3"]) == (1, 1)  # one handler run per attempt of a failing event
    applied = sorted(Subscription.objects.values_list("subscription_id", flat=True))
    assert applied == ["sub_mix0", "sub_mix2", "sub_mix4"]
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == 3
    assert WebhookEvent.objects.get(pk=pks[1]).attempts == 1
