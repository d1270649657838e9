#!/usr/bin/env python
"""Webhook backlog benchmark: 10,000 stored events drained by ONE Celery worker process.

    .venv/bin/python benchmarks/bench_webhooks_backlog.py [--events 10000] [--tenants 50]
        [--mode messages|sweep|both] [--pool prefork|threads|solo] [--concurrency 1]
        [--database bastion_bench_webhooks] [--broker redis://127.0.0.1:6379/4]

1. Own database (shared with bench_webhooks.py, migrated if missing): ``--tenants`` tenants, each
   with a Stripe customer. The inbox, subscriptions and payments are emptied first.
2. ``--events`` verified events go through the real intake (``services.webhook_receive``: signature
   check, INSERT … ON CONFLICT), a realistic mix: 2/3 ``customer.subscription.updated`` (upsert of
   the subscription mirror + an audit event in the tenant's chain), 1/3 Adyen AUTHORISATION (a
   ProviderPayment row + an audit event). No worker runs meanwhile, so they pile up.
   - ``messages``: one ``process_webhook_event`` message per event, as the intake sends them when
     traffic is light (a worker that was down comes back to this queue);
   - ``sweep``: no message at intake (a broker outage); the sweeper then enqueues the backlog as
     ``process_webhook_events`` messages of 100 ids.
3. ONE ``celery worker`` (default ``--pool prefork --concurrency 1``: one process applies every event;
   ``--pool threads --concurrency 2`` as scripts/run.py starts it) is started and timed until every row
   is finished. Each event is still claimed (SKIP LOCKED), applied and marked done in the
   transaction of its slice: batching changes the messages, not the exactly-once unit. A task
   that finds other pending rows drains them too (``services.webhooks_drain``, up to
   ``DRAIN_SECONDS`` per run), so most per-event messages find their row done: one query each.
   "events/s" = events / (last processed_at − first processed_at), so the worker's start-up is
   left out; the wall time including start-up is printed too, and "msgs left" = the messages
   still queued when the last event was finished (no-ops by then; ``--until-queue-empty`` also
   times the worker until the queue is empty).

Target (issue #12): ≥ 300 events/s. Prints a table, writes bench-results/webhooks-backlog.json,
exits 1 if a mode misses it.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import database_url, ensure_database, setup_django, write_results  # noqa: E402

BENCH_DB = "bastion_bench_webhooks"
SETTINGS = "benchmarks.bench_webhooks_settings"
QUEUE = "bastion-bench-webhooks"
FIXTURES = ROOT.parent / "shared" / "fixtures" / "stripe" / "openapi-fixtures-subset.json"
FINISHED = ("done", "ignored", "refused", "dead")


def seed(url: str, tenants: int) -> list[int]:
    ensure_database(url, drop=False)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.billing.models import StripeCustomer
    from apps.tenants.models import Tenant
    from tests.factories import TenantFactory

    ids = []
    for n in range(tenants):
        tenant = Tenant.objects.filter(slug=f"bench-hook-{n}").first() or TenantFactory(
            slug=f"bench-hook-{n}", name=f"Bench hooks {n}"
        )
        StripeCustomer.objects.get_or_create(customer_id=f"cus_bench_{n}", defaults={"tenant": tenant})
        ids.append(tenant.pk)
    return ids


def reset(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE billing_webhookevent, billing_subscription, billing_providerpayment")


def store(tenant_ids: list[int], events: int, *, enqueue: bool) -> None:
    """The backlog, through the real intake (verify + INSERT); messages published only if ``enqueue``."""
    import stripe
    from django.test import override_settings

    from apps.billing import services
    from apps.billing.providers.adyen import sign
    from benchmarks.bench_webhooks_settings import ADYEN_HMAC_KEYS, STRIPE_WEBHOOK_SECRETS

    resources = json.loads(FIXTURES.read_text(encoding="utf-8"))["resources"]
    now = int(time.time())
    when = datetime.now(UTC)
    original = services._publish
    if not enqueue:
        services._publish = lambda pks: None  # a broker outage: rows stored, nothing sent
    try:
        with override_settings(BILLING_WEBHOOK_ENQUEUE_BATCH_MS=0):
            for n in range(events):
                slot = n % len(tenant_ids)
                if n % 3 == 2:
                    item = {
                        "additionalData": {"authCode": "058705"},
                        "amount": {"currency": "EUR", "value": 1000 + n},
                        "eventCode": "AUTHORISATION",
                        "eventDate": (when + timedelta(seconds=n)).isoformat(timespec="seconds"),
                        "merchantAccountCode": "BastionECOM",
                        "merchantReference": f"bastion-{tenant_ids[slot]}-inv-{n}",
                        "pspReference": f"BENCH{n:011d}",
                        "success": "true",
                    }
                    item["additionalData"]["hmacSignature"] = sign(item, ADYEN_HMAC_KEYS[0])
                    body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})
                    services.webhook_receive(provider="adyen", body=body.encode(), headers={}, source="bench")
                    continue
                obj = copy.deepcopy(resources["subscription"])
                obj.update(id=f"sub_bench_{slot}", customer=f"cus_bench_{slot}", status="active", metadata={})
                obj["items"]["data"][0]["quantity"] = 1 + n % 7
                envelope = copy.deepcopy(resources["event"])
                envelope.update(
                    id=f"evt_backlog{n:012d}",
                    type="customer.subscription.updated",
                    created=now + n,
                    data={"object": obj},
                )
                body = json.dumps(envelope, separators=(",", ":"))
                header = stripe.WebhookSignature.generate_signature_header(body, STRIPE_WEBHOOK_SECRETS[0])
                services.webhook_receive(
                    provider="stripe", body=body.encode(), headers={"Stripe-Signature": header}, source="bench"
                )
    finally:
        services._publish = original


def count(url: str, sql: str) -> Any:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql).fetchone()


def drain(
    url: str, broker: str, events: int, timeout: float, pool: str, concurrency: int, until_empty: bool = False
) -> dict[str, float]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "CELERY_BROKER_URL": broker,
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    command = [str(ROOT / ".venv/bin/celery"), "-A", "config", "worker", "-Q", QUEUE, f"--pool={pool}",
               f"--concurrency={concurrency}", "--without-gossip", "--without-mingle", "--without-heartbeat",
               "-l", "WARNING"]  # fmt: skip
    started = time.monotonic()
    worker = subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    finished = 0
    try:
        while time.monotonic() - started < timeout:
            finished = count(url, f"SELECT count(*) FROM billing_webhookevent WHERE status IN {FINISHED}")[0]
            if finished >= events:
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
        cpu = _tree_cpu_seconds(worker.pid)
        left = queued(broker)
        emptied = float("nan")
        while until_empty and time.monotonic() - started < timeout:
            if queued(broker) == 0:
                emptied = time.monotonic() - started
                break
            time.sleep(0.2)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
    first, last = count(url, "SELECT min(processed_at), max(processed_at) FROM billing_webhookevent")
    statuses = count(
        url,
        "SELECT json_object_agg(status, n) FROM"
        " (SELECT status, count(*) n FROM billing_webhookevent GROUP BY status) s",
    )[0]
    span = (last - first).total_seconds() if first and last else float("nan")
    return {
        "events": events,
        "finished": finished,
        "wall_s": wall,
        "processing_s": span,
        "events_per_s": (finished - 1) / span if span and span > 0 else 0.0,
        "statuses": statuses,
        # The worker's own CPU (main process and pool children) per event: what the box's other load
        # does not inflate much, and 1000 / cpu_ms_per_event is the rate if a core were the worker's.
        "cpu_ms_per_event": cpu * 1000 / max(finished, 1),
        "messages_left": left,
        "queue_empty_wall_s": emptied,
    }


def _tree_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, from /proc."""
    ticks = os.sysconf("SC_CLK_TCK")
    pids = [str(pid), *subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    total = 0
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def queued(broker: str) -> int:
    """Messages waiting in the benchmark's queue (not counting the one a worker holds)."""
    from kombu import Connection
    from kombu.exceptions import ChannelError

    with Connection(broker) as conn:
        try:
            return int(conn.default_channel.queue_declare(queue=QUEUE, passive=True).message_count)
        except ChannelError:  # Redis drops an empty list's key: "no queue" is an empty queue
            return 0


def purge(broker: str) -> None:
    from kombu import Connection

    with Connection(broker) as conn:
        conn.default_channel.queue_purge(QUEUE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--tenants", type=int, default=50)
    parser.add_argument("--mode", choices=["messages", "sweep", "both"], default="both")
    parser.add_argument("--database", default=BENCH_DB)
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/4"))
    parser.add_argument("--timeout", type=float, default=600)
    # ONE worker: prefork 1 is one child process; scripts/run.py starts a thread pool of 2.
    parser.add_argument("--pool", choices=["threads", "prefork", "solo"], default="prefork")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--until-queue-empty", action="store_true", help="also time the no-op messages left over")
    args = parser.parse_args()

    os.environ["CELERY_BROKER_URL"] = args.broker
    url = database_url(args.database)
    tenant_ids = seed(url, args.tenants)
    from apps.billing import services

    modes = ["messages", "sweep"] if args.mode == "both" else [args.mode]
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        reset(url)
        purge(args.broker)
        began = time.monotonic()
        store(tenant_ids, args.events, enqueue=mode == "messages")
        stored_s = time.monotonic() - began
        if mode == "sweep":
            swept = services.webhooks_sweep(now=datetime.now(UTC) + timedelta(minutes=3), limit=args.events)
            if swept != args.events:
                raise SystemExit(f"the sweeper took {swept} of {args.events} rows")
        results[mode] = {
            "store_s": stored_s,
            **drain(url, args.broker, args.events, args.timeout, args.pool, args.concurrency, args.until_queue_empty),
        }
        purge(args.broker)
        subs, payments, audits = count(
            url,
            "SELECT (SELECT count(*) FROM billing_subscription), (SELECT count(*) FROM billing_providerpayment),"
            " (SELECT count(*) FROM audit_auditevent WHERE action IN"
            " ('billing.subscription_synced', 'billing.payment_authorised'))",
        )
        results[mode].update(subscriptions=subs, payments=payments)
        del audits  # grows across runs (the audit log is append-only)

    targets = {f"{mode}_ge_300_per_s": r["events_per_s"] >= 300 for mode, r in results.items()}
    targets["all_finished"] = all(r["finished"] == args.events for r in results.values())
    print(f"{args.events} events ({args.tenants} tenants), ONE worker process: --pool={args.pool} "
          f"--concurrency={args.concurrency}")  # fmt: skip
    print(f"{'mode':<10}{'events/s':>10}{'processing s':>14}{'wall s':>9}{'cpu ms/event':>14}{'msgs left':>11}"
          f"{'queue empty s':>15}  statuses")  # fmt: skip
    for mode, r in results.items():
        print(
            f"{mode:<10}{r['events_per_s']:>10.0f}{r['processing_s']:>14.1f}{r['wall_s']:>9.1f}"
            f"{r['cpu_ms_per_event']:>14.2f}{r['messages_left']:>11}{r['queue_empty_wall_s']:>15.1f}  {r['statuses']}"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    for target, met in targets.items():
        print(f"  {'ok  ' if met else 'MISS'} {target}")
    out = write_results("webhooks-backlog", {"events": args.events, "tenants": args.tenants, "modes": results,
                                               "targets": targets})  # fmt: skip
    print(f"wrote {out}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
