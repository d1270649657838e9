#!/usr/bin/env python
"""Usage-ingest benchmark: POST /api/v1/usage (batched, with the budget check) beside GET /api/v1/me and a bare view.

    .venv/bin/python benchmarks/bench_usage.py [--seconds 8] [--rounds 2] [--connections 8] [--workers 2]
        [--batch 100] [--database bastion_bench_usage] [--redis redis://127.0.0.1:6379/5] [--reseed]

1. Seed (own database on DATABASE_URL's server, created and migrated if missing): a tenant, a priced
   model, one API client acting as "developer", and three budgets that every event is checked and
   counted against (the tenant's, the developer role's, the client's; the client's with a per-minute
   throttle), all far above what the run spends, so every event is accepted.
2. One gunicorn (``--workers`` sync workers, ``config/gunicorn.py``, benchmarks/bench_api_settings.py)
   serves the three routes with the same middleware; budget counters and the rate limiter in Redis.
3. wrk (Debian's ``wrk``, required here: each request needs fresh idempotency keys, made in its Lua
   script) runs rounds alternating bare / me / usage, ``--seconds`` each, ``--connections`` keep-alive
   connections. A usage request carries ``--batch`` events with unique keys, so every event is a new
   row: one INSERT … ON CONFLICT per request and one Lua call for the budgets.
4. Afterwards the database is asked how many events were stored and whether any was denied.

Target (issue #12): ≥ 1,000 usage events/s with the budget check, batched. Prints a table, writes
bench-results/usage.json, exits 1 if the target is missed or any request failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import bench_api  # noqa: E402
from benchmarks.common import database_url, ensure_database, setup_django, stop_gunicorn, write_results  # noqa: E402

BENCH_DB = "bastion_bench_usage"
TENANT_SLUG = "bench-usage"
TARGET_EVENTS_PER_SECOND = 1000

WRK_SCRIPT = """
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s"}
local method, path, batch = "%(method)s", "%(path)s", %(batch)d
local prefix = "%(prefix)s"
local head, tail = '{"events":[', ']}'
local ev1 = '{"idempotency_key":"'
local ev2 = '","model":"openai/bench-model","input_tokens":1200,"output_tokens":300,"context_tokens":4000,' ..
  '"tool_calls":["web-search"],"prompt_hash":"h1","timestamp":"%(timestamp)s"}'
local counter = 0
local threads = 0
setup = function(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
request = function()
  if method == "GET" then
    return wrk.format("GET", path, headers)
  end
  counter = counter + 1
  local parts = {}
  local stem = ev1 .. prefix .. "-" .. tid .. "-" .. counter .. "-"
  for j = 1, batch do
    parts[j] = stem .. j .. ev2
  end
  return wrk.format("POST", path, headers, head .. table.concat(parts, ",") .. tail)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def seed(url: str, *, reseed: bool) -> str:
    """The tenant, model, client and budgets; returns an access token of the client."""
    ensure_database(url, drop=reseed)
    os.environ["DJANGO_SETTINGS_MODULE"] = bench_api.SETTINGS
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.access.services import builtin_roles_seed
    from apps.billing import budgets
    from apps.billing.models import Budget
    from apps.catalog.models import AIModel, Tool
    from apps.keys import services as keys_services
    from apps.keys.models import ApiClient
    from apps.tenants.models import Tenant
    from tests.factories import TenantFactory

    tenant = Tenant.objects.filter(slug=TENANT_SLUG).first() or TenantFactory(slug=TENANT_SLUG, name="Bench usage")
    roles = {role.key: role for role in builtin_roles_seed(tenant=tenant)}
    AIModel.objects.get_or_create(
        tenant=tenant,
        provider="openai",
        model_name="bench-model",
        defaults={"price_per_1k_input": Decimal("0.15"), "price_per_1k_output": Decimal("0.60"), "enabled": True},
    )
    Tool.objects.get_or_create(tenant=tenant, name="web-search", defaults={"allowlisted": True})
    client = ApiClient.objects.filter(tenant=tenant, name="bench").first()
    if client is None:
        client = keys_services.apiclient_create(tenant=tenant, name="bench", builtin_role="developer").client
    wanted = (
        ("Tenant", {"scope": "tenant"}),
        ("Developers", {"scope": "role", "role": roles["developer"]}),
        ("Bench client", {"scope": "client", "client": client, "per_minute": Decimal("10000000")}),
    )
    for name, fields in wanted:
        if not Budget.objects.for_tenant(tenant).filter(name=name).exists():
            budgets.budget_create(tenant=tenant, data={"name": name, "amount": Decimal("100000000"), **fields})
    return keys_services.token_issue(client=client).access_token


def run(method: str, path: str, token: str, *, seconds: int, connections: int, batch: int) -> dict[str, float]:
    script_text = WRK_SCRIPT % {
        "token": token,
        "method": method,
        "path": path,
        "batch": batch,
        "prefix": uuid.uuid4().hex[:12],
        "timestamp": datetime.now(UTC).isoformat(),
    }
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(script_text)
    try:
        output = subprocess.run(
            [
                "wrk",
                "-t",
                "2",
                "-c",
                str(connections),
                "-d",
                f"{seconds}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                f"http://127.0.0.1:{bench_api.PORT}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    requests, duration_us, p50_us, p99_us, errors, non2xx = (int(v) for v in line.split()[1:7])
    return {
        "rps": requests / (duration_us / 1e6),
        "p50_ms": p50_us / 1000,
        "p99_ms": p99_us / 1000,
        "errors": errors + non2xx,
        "requests": requests,
    }


def stored() -> dict[str, int]:
    from django.db.models import Count

    from apps.billing.models import UsageEvent
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.get(slug=TENANT_SLUG)
    rows = UsageEvent.objects.for_tenant(tenant).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--database", default=BENCH_DB)
    parser.add_argument("--redis", default=os.environ.get("API_REDIS_URL", "redis://127.0.0.1:6379/5"))
    parser.add_argument("--reseed", action="store_true")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed (Debian: apt-get install wrk): each request makes fresh idempotency keys")
    os.environ["CACHE_URL"] = args.redis
    os.environ["API_REDIS_URL"] = args.redis
    url = database_url(args.database)
    token = seed(url, reseed=args.reseed)
    before = stored()

    server = bench_api.start_server(url, args.workers, args.redis)
    routes = (
        ("bare", "POST", "/bench/bare", 1),
        ("me", "GET", "/api/v1/me", 1),
        ("usage", "POST", "/api/v1/usage", args.batch),
    )
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name, *_ in routes}
    try:
        for _name, method, path, batch in routes:  # warm-up: every worker verifies the token, loads its rows
            run(method, path, token, seconds=2, connections=args.connections, batch=batch)
        time.sleep(0.5)
        for _ in range(args.rounds):
            for name, method, path, batch in routes:
                rounds[name].append(
                    run(method, path, token, seconds=args.seconds, connections=args.connections, batch=batch)
                )
    finally:
        stop_gunicorn(server)
    after = stored()

    def summary(name: str) -> dict[str, float]:
        runs = rounds[name]
        return {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": max(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
        }

    bare, me, usage = summary("bare"), summary("me"), summary("usage")
    events_per_second = usage["rps"] * args.batch
    new_accepted = after.get("accepted", 0) - before.get("accepted", 0)
    new_denied = after.get("denied", 0) - before.get("denied", 0)
    targets = {
        "usage_events_per_s_ge_1000": events_per_second >= TARGET_EVENTS_PER_SECOND,
        "no_errors": usage["errors"] == 0 and me["errors"] == 0 and bare["errors"] == 0,
        "every_event_stored_and_accepted": new_denied == 0 and new_accepted > 0,
    }
    print(
        f"wrk, {args.connections} connections, gunicorn {args.workers} sync workers, {args.rounds} x {args.seconds}s "
        f"rounds each (alternating), usage batches of {args.batch} events, 3 budgets checked per event"
    )
    print(f"{'route':<26}{'req/s':>10}{'events/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, row, per in (
        ("bare JSON view", bare, 1),
        ("GET /api/v1/me", me, 1),
        ("POST /api/v1/usage", usage, args.batch),
    ):
        print(
            f"{name:<26}{row['rps']:>10.0f}{row['rps'] * per:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}"
            f"{row['errors']:>8.0f}"
        )
    print(f"stored during the run (warm-up included): {new_accepted} accepted, {new_denied} denied")
    for target, met in targets.items():
        print(f"  {'ok  ' if met else 'MISS'} {target}")
    out = write_results(
        "usage",
        {
            "connections": args.connections,
            "workers": args.workers,
            "seconds": args.seconds,
            "batch": args.batch,
            "rounds": rounds,
            "bare": bare,
            "me": me,
            "usage": usage,
            "usage_events_per_s": events_per_second,
            "stored": {"accepted": new_accepted, "denied": new_denied},
            "targets": targets,
        },
    )
    print(f"wrote {out}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
