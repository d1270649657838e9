#!/usr/bin/env python
"""Webhook intake benchmark: verified and stored events/s through gunicorn, side by side with a bare Django view.

    .venv/bin/python benchmarks/bench_webhooks.py [--seconds 6] [--rounds 2] [--connections 16] [--workers 2]
        [--threads 4] [--database bastion_bench_webhooks] [--broker redis://127.0.0.1:6379/4] [--loader auto|wrk|python]

1. Own database on DATABASE_URL's server (created and migrated if missing); the inbox is emptied
   before every round.
2. One gunicorn (``--workers`` x ``--threads``, as scripts/run.py starts it; ``config/gunicorn.py``,
   benchmarks/bench_webhooks_settings.py) serves ``/bench/bare`` (a bare JSON view through the full middleware stack),
   ``/billing/webhooks/stripe/`` and ``/billing/webhooks/adyen/``.
3. Bodies: realistic, unique events (Stripe: ``customer.subscription.updated`` / ``invoice.paid`` /
   ``customer.updated`` envelopes from the shared fixtures, each signed with the SDK's header
   generator just before its round; Adyen: single-item AUTHORISATION notifications with their HMAC).
   Every request is a new event, so every 200 is one verify + one INSERT + one enqueue.
4. Rounds alternate bare / stripe / adyen, each ``--seconds`` long on ``--connections`` keep-alive
   connections from wrk (Debian's ``wrk``; a small threaded Python loader when it is missing, which
   takes CPU from the server on the same 2 cores, so the figures drop). "stored/s" counts inbox rows
   after the round (not responses), divided by the round's duration.

Target (issue #12): ≥ 1,000 verified and stored events/s. Prints a table, writes
bench-results/webhooks.json, exits 1 if the target is missed. The processing side is
benchmarks/bench_webhooks_backlog.py.
"""

from __future__ import annotations

import argparse
import copy
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import (  # noqa: E402
    database_url,
    ensure_database,
    setup_django,
    start_gunicorn,
    stop_gunicorn,
    write_results,
)

BENCH_DB = "bastion_bench_webhooks"
SETTINGS = "benchmarks.bench_webhooks_settings"
PORT = 18766
FIXTURES = ROOT.parent / "shared" / "fixtures" / "stripe" / "openapi-fixtures-subset.json"
STRIPE_SECRET = "whsec_bench_0123456789abcdef"  # noqa: S105 — the benchmark's own endpoint secret
ADYEN_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
ROUTES = {"bare": "/bench/bare", "stripe": "/billing/webhooks/stripe/", "adyen": "/billing/webhooks/adyen/"}

# Each thread reads the bodies file ("<signature header>\t<body>" per line) and takes every
# n-th line, so no two requests of a round carry the same event.
WRK_SCRIPT = """
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
function init(args)
  lines = {}
  local n = 0
  for line in io.lines("%(file)s") do
    if n %% %(threads)d == tid then table.insert(lines, line) end
    n = n + 1
  end
  i = 0
end
request = function()
  i = i + 1
  local line = lines[((i - 1) %% #lines) + 1]
  local tab = string.find(line, "\\t", 1, true)
  local headers = {["Content-Type"] = "application/json"}
  local signature = string.sub(line, 1, tab - 1)
  if signature ~= "" then headers["Stripe-Signature"] = signature end
  return wrk.format("POST", "%(path)s", headers, string.sub(line, tab + 1))
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def seed(url: str, *, reseed: bool) -> None:
    ensure_database(url, drop=reseed)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def _resources() -> dict[str, Any]:
    return json.loads(FIXTURES.read_text(encoding="utf-8"))["resources"]


def stripe_lines(count: int) -> list[str]:
    """``signature<TAB>body`` for ``count`` unique, freshly signed Stripe events (a realistic mix)."""
    import stripe

    resources = _resources()
    kinds = [
        ("customer.subscription.updated", resources["subscription"]),
        ("invoice.paid", resources["invoice"]),
        ("customer.updated", resources["customer"]),
    ]
    now = int(time.time())
    lines = []
    for n in range(count):
        event_type, obj = kinds[n % len(kinds)]
        envelope = copy.deepcopy(resources["event"])
        envelope.update(id=f"evt_bench{uuid.uuid4().hex[:20]}", type=event_type, created=now, data={"object": obj})
        body = json.dumps(envelope, separators=(",", ":"))
        lines.append(
            stripe.WebhookSignature.generate_signature_header(body, STRIPE_SECRET, timestamp=now) + "\t" + body
        )
    return lines


def adyen_lines(count: int) -> list[str]:
    """``<TAB>body`` for ``count`` unique single-item AUTHORISATION notifications, each HMAC-signed."""
    from apps.billing.providers.adyen import sign

    when = datetime.now(UTC).isoformat(timespec="seconds")
    lines = []
    for n in range(count):
        item = {
            "additionalData": {"authCode": "058705", "cardSummary": "1111", "expiryDate": "03/2030"},
            "amount": {"currency": "EUR", "value": 1130 + n % 100},
            "eventCode": "AUTHORISATION",
            "eventDate": when,
            "merchantAccountCode": "BastionECOM",
            "merchantReference": f"bastion-1-inv-{n}",
            "operations": ["CANCEL", "CAPTURE", "REFUND"],
            "paymentMethod": "visa",
            "pspReference": f"{8800000000000000 + n}{uuid.uuid4().hex[:4]}",
            "reason": "058705:1111:03/2030",
            "success": "true",
        }
        item["additionalData"]["hmacSignature"] = sign(item, ADYEN_KEY)
        body = json.dumps({"live": "false", "notificationItems": [{"NotificationRequestItem": item}]})
        lines.append("\t" + body)
    return lines


def start_server(url: str, workers: int, threads: int, broker: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "CELERY_BROKER_URL": broker,
        "LOG_LEVEL": "WARNING",
    }
    # As scripts/run.py starts it (2 workers x 4 threads): a gthread worker keeps several requests in
    # flight, so the commits of concurrent deliveries share PostgreSQL's WAL flushes.
    return start_gunicorn(env, port=PORT, workers=workers, threads=threads)


def post(connection: http.client.HTTPConnection, path: str, line: str) -> tuple[int, bytes]:
    signature, _, body = line.partition("\t")
    headers = {"Content-Type": "application/json"}
    if signature:
        headers["Stripe-Signature"] = signature
    connection.request("POST", path, body, headers)
    response = connection.getresponse()
    return response.status, response.read()


def run_wrk(path: str, lines: list[str], seconds: int, connections: int) -> dict[str, float]:
    threads = 2
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as data:
        data.write("\n".join(lines) + "\n")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"file": data.name, "path": path, "threads": threads})
    try:
        output = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "5s",
             "-s", script.name, f"http://127.0.0.1:{PORT}"],
            capture_output=True, text=True, timeout=seconds + 60, check=True,
        ).stdout  # fmt: skip
    finally:
        os.unlink(script.name)
        os.unlink(data.name)
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    requests, duration_us, p50_us, p99_us, errors, non2xx = (int(v) for v in line.split()[1:7])
    return {
        "rps": requests / (duration_us / 1e6),
        "seconds": duration_us / 1e6,
        "p50_ms": p50_us / 1000,
        "p99_ms": p99_us / 1000,
        "errors": errors + non2xx,
        "requests": requests,
    }


def run_python(path: str, lines: list[str], seconds: int, connections: int) -> dict[str, float]:
    """A bounded threaded loader (keep-alive, one thread per connection) for machines without wrk."""
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()
    started = time.monotonic()
    stop = started + seconds

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
        mine: list[float] = []
        n = offset
        while time.monotonic() < stop and n < len(lines):
            began = time.perf_counter()
            status, _ = post(connection, path, lines[n])
            mine.append(time.perf_counter() - began)
            n += connections
            if status != 200:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "seconds": elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors[0],
        "requests": len(latencies),
    }


def server_cpu_seconds(server: subprocess.Popen) -> float:
    """User + system CPU of gunicorn's workers so far (/proc): a figure other load on the box does not inflate."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    children = subprocess.run(["pgrep", "-P", str(server.pid)], capture_output=True, text=True).stdout.split()
    for pid in children:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


def inbox(url: str, sql: str) -> int:
    """Run one statement on the benchmark database; the first column of its row, if it returns one."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cursor = conn.execute(sql)
        row = cursor.fetchone() if cursor.description else None
        return int(row[0]) if row else 0


def purge_queue(broker: str) -> None:
    from kombu import Connection

    with Connection(broker) as conn:
        conn.default_channel.queue_delete("bastion-bench-webhooks")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4, help="per worker; 1 = sync workers")
    parser.add_argument("--events", type=int, default=20_000, help="unique events prepared per round")
    parser.add_argument("--database", default=BENCH_DB)
    parser.add_argument("--broker", default=os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/4"))
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()

    loader = args.loader
    if loader == "auto":
        loader = "wrk" if shutil.which("wrk") else "python"
    load = run_wrk if loader == "wrk" else run_python
    url = database_url(args.database)
    os.environ["CELERY_BROKER_URL"] = args.broker
    seed(url, reseed=args.reseed)
    table = "billing_webhookevent"

    server = start_server(url, args.workers, args.threads, args.broker)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in ROUTES}
    try:
        # Warm-up: every worker has imported and connected on each route.
        for name, lines in (("bare", stripe_lines(40)), ("stripe", stripe_lines(40)), ("adyen", adyen_lines(40))):
            connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
            for line in lines:
                status, body = post(connection, ROUTES[name], line)
                if status != 200:
                    raise SystemExit(f"warm-up: {name} answered {status} {body[:200]!r}")
        for _ in range(args.rounds):
            for name, path in ROUTES.items():
                lines = adyen_lines(args.events) if name == "adyen" else stripe_lines(args.events)
                inbox(url, f"TRUNCATE {table}")
                cpu_before = server_cpu_seconds(server)
                result = load(path, lines, args.seconds, args.connections)
                result["server_cpu_ms_per_request"] = (
                    (server_cpu_seconds(server) - cpu_before) * 1000 / max(result["requests"], 1)
                )
                stored = inbox(url, f"SELECT count(*) FROM {table}")
                result["stored"] = stored
                result["stored_per_s"] = stored / result["seconds"] if name != "bare" else 0.0
                rounds[name].append(result)
    finally:
        stop_gunicorn(server)
        purge_queue(args.broker)

    def summary(name: str) -> dict[str, float]:
        runs = rounds[name]
        return {
            "rps": statistics.median(r["rps"] for r in runs),
            "stored_per_s": statistics.median(r["stored_per_s"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": max(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "cpu_ms": statistics.median(r["server_cpu_ms_per_request"] for r in runs),
        }

    results = {name: summary(name) for name in ROUTES}
    bare = results["bare"]["rps"]
    targets = {
        "stripe_stored_ge_1000_per_s": results["stripe"]["stored_per_s"] >= 1000,
        "adyen_stored_ge_1000_per_s": results["adyen"]["stored_per_s"] >= 1000,
        "no_errors": all(r["errors"] == 0 for r in results.values()),
    }
    print(
        f"loader {loader}, {args.connections} connections, gunicorn {args.workers} workers x {args.threads} threads, "
        f"{args.rounds} x {args.seconds}s rounds each (alternating)"
    )
    print(
        f"{'route':<26}{'req/s':>9}{'stored/s':>10}{'vs bare':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'cpu ms':>8}"
    )
    for name, row in results.items():
        label = {"bare": "bare Django view", "stripe": "POST webhooks/stripe/", "adyen": "POST webhooks/adyen/"}[name]
        ratio = f"{row['rps'] / bare:.0%}" if name != "bare" else ""
        stored = f"{row['stored_per_s']:.0f}" if name != "bare" else ""
        print(
            f"{label:<26}{row['rps']:>9.0f}{stored:>10}{ratio:>9}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['errors']:>8.0f}{row['cpu_ms']:>8.2f}"
        )
    print("cpu ms: gunicorn workers' CPU per request (user + system), independent of other load on the box")
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    for target, met in targets.items():
        print(f"  {'ok  ' if met else 'MISS'} {target}")
    out = write_results(
        "webhooks",
        {"loader": loader, "connections": args.connections, "workers": args.workers, "threads": args.threads,
         "seconds": args.seconds,
         "rounds": rounds, "summary": results, "targets": targets},
    )  # fmt: skip
    print(f"wrote {out}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
