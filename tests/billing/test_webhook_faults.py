"""Faults with real processes: a `celery worker` SIGKILLed mid-event, and the broker down while webhooks arrive.

Each test starts its own redis-server on a spare loopback port (the shared Redis and
PostgreSQL are never stopped) and real `celery worker` subprocesses on it, pointed at
this test's database. The test process publishes to that broker too (``private_broker``).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
import redis
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.billing import services
from apps.billing.models import ProviderPayment, StripeCustomer, Subscription, WebhookEvent
from tests.billing import adyen_helpers
from tests.billing.conftest import deliver, event, subscription

pytestmark = [pytest.mark.celery, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
CELERY = str(Path(sys.executable).with_name("celery"))
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgresql://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


@dataclass
class Broker:
    port: int
    queue: str
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603 — our own arguments
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis(port=self.port, socket_connect_timeout=0.2).ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # our own redis-server, by its pid
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def private_broker() -> Iterator[Broker]:
    """A redis-server of this test's own; the test process's Celery app publishes to it meanwhile."""
    from config.celery import app

    broker = Broker(port=_free_port(), queue=f"bastion-faults-{uuid.uuid4().hex[:8]}")
    broker.start()
    saved = {key: app.conf[key] for key in ("broker_write_url", "task_always_eager", "task_default_queue")}

    def reset_pools() -> None:
        # The app caches its connection and producer pools for the first broker it used. They are
        # dropped, not closed: the session's in-process worker (tests/conftest.py) shares them.
        app._pool = None
        app.amqp._producer_pool = None

    # broker_write_url: publishing uses it, and unlike broker_url the CELERY_BROKER_URL variable does not override it.
    app.conf.update(broker_write_url=broker.url, task_always_eager=False, task_default_queue=broker.queue)
    reset_pools()
    try:
        yield broker
    finally:
        app.conf.update(saved)
        reset_pools()
        broker.stop()


@pytest.fixture
def workers(private_broker: Broker) -> Iterator:
    """``start()`` a real `celery worker` subprocess (prefork, one child) on the private broker."""
    started: list[subprocess.Popen] = []

    def start() -> subprocess.Popen:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings.test",
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": private_broker.url,
            "PYTHONPATH": str(ROOT),
        }
        process = subprocess.Popen(  # noqa: S603 — our own arguments
            [CELERY, "-A", "config", "worker", "-Q", private_broker.queue, "--pool=prefork", "--concurrency=1",
             "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING"],
            cwd=ROOT, env=env, start_new_session=True,
        )  # fmt: skip
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # our own worker's process group
            process.wait(timeout=10)


def _backends_waiting_on_a_lock() -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            " AND pid <> pg_backend_pid()"
        )
        return [row[0] for row in cursor.fetchall()]


def _backend_alive(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone() is not None


def test_worker_killed_mid_event_then_sweeper_and_a_new_worker_apply_it_once(
    cast, private_broker, workers, wait_for
) -> None:
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    payload = event("customer.subscription.created", subscription("cus_acme", sub_id="sub_killed"))
    # The handler locks the customer's mapping row; holding that lock here stalls it mid-event.
    with psycopg.connect(_database_url()) as blocker:
        blocker.execute("SELECT 1 FROM billing_stripecustomer WHERE customer_id = 'cus_acme' FOR UPDATE")
        first = workers()
        assert deliver(Client(), payload).status_code == 200
        [stalled] = wait_for(_backends_waiting_on_a_lock, timeout=60, message="the worker never reached the handler")
        os.killpg(first.pid, signal.SIGKILL)  # the whole worker: main process and its child
        first.wait(timeout=10)
        blocker.rollback()  # the orphaned backend gets the lock, finds its client gone, rolls back
    wait_for(lambda: not _backend_alive(stalled), timeout=30)

    row = WebhookEvent.objects.get(event_id=payload["id"])
    assert (row.status, row.attempts) == ("pending", 0)  # the killed attempt left nothing, not even a count
    assert not Subscription.objects.exists()
    assert not AuditEvent.objects.filter(action="billing.subscription_synced").exists()

    workers()  # a new worker; the killed one's message stays unacked until its visibility timeout
    assert services.webhooks_sweep(now=timezone.now() + timedelta(minutes=3)) == 1
    done = wait_for(lambda: WebhookEvent.objects.filter(event_id=payload["id"], status="done").first(), timeout=60)
    assert done.attempts == 0
    assert Subscription.objects.get().subscription_id == "sub_killed"
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == 1


def test_broker_down_while_webhooks_arrive_then_swept_and_processed(cast, private_broker, workers, wait_for) -> None:
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    workers()  # running through the whole outage; it reconnects when the broker is back
    private_broker.stop()

    client = Client()
    # As in production: ids leave through the publisher thread, so a request never waits on the broker.
    batching = override_settings(BILLING_WEBHOOK_ENQUEUE_BATCH_MS=5)
    batching.enable()
    stripe_events = [
        event("customer.subscription.created", subscription("cus_acme", sub_id=f"sub_{i}")) for i in range(4)
    ]
    authorisation = adyen_helpers.item(tenant_id=cast.acme.pk)
    started = time.monotonic()
    for payload in stripe_events:
        assert deliver(client, payload).status_code == 200  # stored before the 2xx, broker or not
    with override_settings(ADYEN_HMAC_KEYS=[adyen_helpers.HMAC_KEY]):
        answer = adyen_helpers.post(client, adyen_helpers.notification(authorisation))
    assert answer.content == b"[accepted]"
    assert time.monotonic() - started < 3  # kombu's seconds of connection attempts hold no request
    time.sleep(0.1)
    with services._publisher.publishing:  # the thread's attempt while the broker was down has failed
        batching.disable()
        # Ids that arrived during that attempt would be tried again later, after this test; the rows
        # are stored, and the sweeper below is what enqueues them.
        with services._publisher._lock:
            services._publisher._pks.clear()
    assert WebhookEvent.objects.filter(status="pending").count() == 5

    time.sleep(1)
    assert not Subscription.objects.exists()  # nothing could be processed meanwhile
    assert services.webhooks_sweep() == 0  # not due yet: inside their grace

    private_broker.start()  # same port: the broker is back
    assert services.webhooks_sweep(now=timezone.now() + timedelta(minutes=3)) == 5
    wait_for(lambda: WebhookEvent.objects.filter(status="done").count() == 5, timeout=90)
    assert Subscription.objects.count() == 4
    assert ProviderPayment.objects.for_tenant(cast.acme).count() == 1
    assert AuditEvent.objects.filter(action="billing.subscription_synced").count() == 4


def test_a_connection_killed_between_deliveries_is_replaced_without_a_health_check() -> None:
    """The intake skips Django's SELECT 1 health check; a dead kept-alive connection is reopened once."""

    def receive() -> services.Intake:
        body = adyen_helpers.notification(adyen_helpers.item()).encode()
        return services.webhook_receive(provider="adyen", body=body, headers={}, source="127.0.0.1")

    with override_settings(ADYEN_HMAC_KEYS=[adyen_helpers.HMAC_KEY], BILLING_WEBHOOK_ENQUEUE_BATCH_MS=0):
        assert receive().stored
        pid = connection.connection.info.backend_pid
        with psycopg.connect(_database_url(), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        time.sleep(0.2)
        assert receive().stored  # not a 500: the INSERT is retried once on a fresh connection
    assert connection.connection.info.backend_pid != pid
    assert WebhookEvent.objects.count() == 2
