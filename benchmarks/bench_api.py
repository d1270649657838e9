#!/usr/bin/env python
"""Runtime API benchmark: POST /api/v1/authorize vs a bare Django JSON view, side by side, one gunicorn.

    .venv/bin/python benchmarks/bench_api.py [--seconds 8] [--rounds 2] [--connections 8] [--workers 2]
        [--database bastion_bench_api] [--redis redis://127.0.0.1:6379/7] [--loader auto|wrk|python]

1. Seed (own database on DATABASE_URL's server, created and migrated if missing): a tenant with
   20 members (mixed roles), 30 datasets (public … restricted), 6 tools, one API client acting as
   "developer", and a token from the token service.
2. One gunicorn (``--workers`` sync workers, ``config/gunicorn.py``) serves both routes with the
   same middleware: ``/bench/bare`` (benchmarks/bench_api_urls.py) and the real ``/api/v1/authorize``
   with the shared cache and the rate limiter in Redis (benchmarks/bench_api_settings.py).
3. Warm-up (every body on every worker), then rounds alternating bare / authorize, each
   ``--seconds`` long, ``--connections`` keep-alive connections on loopback: wrk (Debian's ``wrk``)
   when installed, else a small threaded Python loader (slower, so the absolute figures drop).
   The decision mix cycles 16 bodies: the client and members, with and without a resource, ~70 %
   allowed, ~30 % denied (a denial writes its decision-log row, as in production).
4. Token verification in this process: a warm ``verify_access_token`` (cached by the whole token
   until exp, plus the one shared-cache read for revocation) timed over 20,000 calls.

Targets (issue #10): authorize ≥ 60 % of bare throughput, authorize p99 < 20 ms, token verification
< 0.2 ms. "No query on the warm path" is proved by tests/api/test_warm_path.py (a query count).
Prints a table, writes bench-results/api.json, exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
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

BENCH_DB = "bastion_bench_api"
TENANT_SLUG = "bench-api"
SETTINGS = "benchmarks.bench_api_settings"
PORT = 18765

WRK_SCRIPT = """
local bodies = %(bodies)s
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(token)s"}
local i = 0
request = function()
  i = i + 1
  return wrk.format("POST", "%(path)s", headers, bodies[(i %% #bodies) + 1])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %%d %%d %%d %%d %%d %%d\\n", summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(99), e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def seed(url: str, *, reseed: bool) -> tuple[str, list[str]]:
    """The tenant, members, catalog and client; returns (token, the request bodies of the mix)."""
    ensure_database(url, drop=reseed)
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from apps.catalog.models import Dataset, Tool
    from apps.keys import services as keys_services
    from apps.tenants.models import Membership, Tenant
    from tests.factories import MembershipFactory, TenantFactory, UserFactory

    tenant = Tenant.objects.filter(slug=TENANT_SLUG).first()
    if tenant is None:
        tenant = TenantFactory(slug=TENANT_SLUG, name="Bench API")
        roles = ["member", "analyst", "viewer", "developer", "admin"]
        for n in range(20):
            user = UserFactory(email=f"m{n}@bench-api.example")
            MembershipFactory(tenant=tenant, user=user, role=roles[n % len(roles)])
        levels = ["public", "internal", "confidential", "restricted"]
        for n in range(30):
            Dataset.objects.create(tenant=tenant, name=f"ds-{n}", classification=levels[n % 4])
        for n in range(6):
            Tool.objects.create(tenant=tenant, name=f"tool-{n}", allowlisted=True)
    from apps.keys.models import ApiClient

    client = ApiClient.objects.filter(tenant=tenant, name="bench").first()
    if client is None:
        client = keys_services.apiclient_create(tenant=tenant, name="bench", builtin_role="developer").client
    token = keys_services.token_issue(client=client).access_token
    datasets = list(Dataset.objects.filter(tenant=tenant).order_by("pk").values_list("pk", "classification"))
    tools = list(Tool.objects.filter(tenant=tenant).order_by("pk").values_list("pk", flat=True))
    members = list(Membership.objects.filter(tenant=tenant).order_by("pk").values_list("user__email", "role"))
    return token, _mix(datasets, tools, members)


# Whether each check of the mix is allowed (the order of ``_mix``): 12 of 16 allowed, 4 denied.
EXPECTED = [True, True, True, False, True, True, False, True, True, True, False, True, True, True, False, True]


def _mix(datasets: list[tuple[int, str]], tools: list[int], members: list[tuple[str, str]]) -> list[str]:
    client = {"type": "client"}

    def member(n: int) -> dict[str, str]:
        return {"type": "member", "email": members[n][0]}

    def ds(n: int) -> dict[str, str]:
        return {"type": "dataset", "id": str(datasets[n][0])}

    def tool(n: int) -> dict[str, str]:
        return {"type": "tool", "id": str(tools[n])}

    checks = [
        (client, "dataset.read", ds(0)),  # public: allowed
        (client, "dataset.read", ds(1)),  # internal: allowed
        (client, "dataset.read", ds(2)),  # confidential: allowed (developer clearance)
        (client, "dataset.read", ds(3)),  # restricted: denied
        (client, "tool.execute", tool(0)),  # allowed
        (client, "tenant.view", None),  # allowed
        (client, "billing.manage", None),  # denied
        (member(0), "dataset.read", ds(5)),  # member, internal: allowed
        (member(0), "tool.execute", tool(1)),  # member: allowed
        (member(1), "dataset.read", ds(4)),  # analyst, public: allowed
        (member(2), "dataset.write", ds(1)),  # viewer: denied
        (member(3), "dataset.write", ds(9)),  # developer, internal: allowed
        (member(4), "member.manage", None),  # admin: allowed
        (member(5), "tool.execute", tool(2)),  # member: allowed
        (member(7), "dataset.read", ds(7)),  # viewer: denied
        (client, "dataset.read", ds(6)),  # confidential: allowed
    ]
    bodies = []
    for subject, action, resource in checks:
        body: dict[str, Any] = {"subject": subject, "action": action}
        if resource is not None:
            body["resource"] = resource
        bodies.append(json.dumps(body))
    return bodies


def start_server(url: str, workers: int, redis_url: str) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "DATABASE_URL": url,
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "API_REDIS_URL": redis_url,
        "CACHE_URL": redis_url,
        "LOG_LEVEL": "WARNING",
    }
    return start_gunicorn(env, port=PORT, workers=workers)


def post(connection: http.client.HTTPConnection, path: str, body: str, token: str) -> int:
    connection.request("POST", path, body, {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    response = connection.getresponse()
    response.read()
    return response.status


def warm(path: str, bodies: list[str], token: str, workers: int) -> None:
    """Every body a few times on fresh connections, so every worker has verified and loaded everything."""
    for _ in range(workers * 4):
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
        for body in bodies:
            status = post(connection, path, body, token)
            if status != 200:
                raise SystemExit(f"warm-up: {path} answered {status}")
        connection.close()


def run_wrk(path: str, bodies: list[str], token: str, seconds: int, connections: int) -> dict[str, float]:
    lua_bodies = "{" + ", ".join("[==[" + b + "]==]" for b in bodies) + "}"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT % {"bodies": lua_bodies, "token": token, "path": path})
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
                "5s",
                "-s",
                script.name,
                f"http://127.0.0.1:{PORT}",
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 30,
            check=True,
        ).stdout
    finally:
        os.unlink(script.name)
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    requests, duration_us, p50_us, p99_us, errors, non2xx = (int(v) for v in line.split()[1:7])
    raw = {
        "requests": requests,
        "duration_us": duration_us,
        "p50_us": p50_us,
        "p99_us": p99_us,
        "errors": errors,
        "non2xx": non2xx,
    }
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["errors"] + raw["non2xx"],
        "requests": raw["requests"],
    }


def run_python(path: str, bodies: list[str], token: str, seconds: int, connections: int) -> dict[str, float]:
    """A bounded threaded loader (keep-alive, one thread per connection) for machines without wrk."""
    latencies: list[float] = []
    errors = [0]
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker(offset: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=10)
        mine: list[float] = []
        n = offset
        while time.monotonic() < stop:
            started = time.perf_counter()
            status = post(connection, path, bodies[n % len(bodies)], token)
            mine.append(time.perf_counter() - started)
            n += 1
            if status != 200:
                with lock:
                    errors[0] += 1
        with lock:
            latencies.extend(mine)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors[0],
        "requests": len(latencies),
    }


def verify_cost(token: str, calls: int = 20_000) -> float:
    """Microseconds per warm verify_access_token (this process; the shared cache is the server's Redis)."""
    from apps.keys import conf
    from apps.keys.tokens import verify_access_token

    audience = conf.default_audience()
    verify_access_token(token, audience=audience)
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(calls // 3):
            verify_access_token(token, audience=audience)
        best = min(best, (time.perf_counter() - started) / (calls // 3))
    return best * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--database", default=BENCH_DB)
    parser.add_argument("--redis", default=os.environ.get("API_REDIS_URL", "redis://127.0.0.1:6379/7"))
    parser.add_argument("--loader", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--reseed", action="store_true")
    parser.add_argument(
        "--mix", choices=["realistic", "allowed"], default="realistic", help="allowed: only the allowed checks"
    )
    args = parser.parse_args()

    loader = args.loader
    if loader == "auto":
        loader = "wrk" if shutil.which("wrk") else "python"
    load = run_wrk if loader == "wrk" else run_python
    # The verify timing below reads the same shared cache the server uses.
    os.environ["CACHE_URL"] = args.redis
    os.environ["API_REDIS_URL"] = args.redis
    url = database_url(args.database)
    token, bodies = seed(url, reseed=args.reseed)
    if args.mix == "allowed":
        bodies = [body for body, allowed in zip(bodies, EXPECTED, strict=True) if allowed]

    server = start_server(url, args.workers, args.redis)
    rounds: dict[str, list[dict[str, float]]] = {"bare": [], "authorize": []}
    try:
        warm("/bench/bare", bodies, token, args.workers)
        warm("/api/v1/authorize", bodies, token, args.workers)
        for _ in range(args.rounds):
            for name, path in (("bare", "/bench/bare"), ("authorize", "/api/v1/authorize")):
                rounds[name].append(load(path, bodies, token, args.seconds, args.connections))
    finally:
        stop_gunicorn(server)
    verify_us = verify_cost(token)

    def summary(name: str) -> dict[str, float]:
        runs = rounds[name]
        return {
            "rps": statistics.median(r["rps"] for r in runs),
            "p50_ms": statistics.median(r["p50_ms"] for r in runs),
            "p99_ms": max(r["p99_ms"] for r in runs),
            "errors": sum(r["errors"] for r in runs),
            "requests": sum(r["requests"] for r in runs),
        }

    bare, auth = summary("bare"), summary("authorize")
    ratio = auth["rps"] / bare["rps"]
    targets = {
        "authorize_vs_bare_ge_60pct": ratio >= 0.60,
        "authorize_p99_lt_20ms": auth["p99_ms"] < 20,
        "token_verify_lt_0_2ms": verify_us < 200,
        "no_errors": auth["errors"] == 0 and bare["errors"] == 0,
    }
    print(
        f"loader {loader}, {args.connections} connections, gunicorn {args.workers} sync workers, "
        f"{args.rounds} x {args.seconds}s rounds each (alternating)"
    )
    print(f"{'route':<20}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}")
    for name, row in (("bare JSON view", bare), ("POST /authorize", auth)):
        print(f"{name:<20}{row['rps']:>10.0f}{row['p50_ms']:>10.2f}{row['p99_ms']:>10.2f}{row['errors']:>8.0f}")
    print(f"authorize / bare throughput: {ratio:.0%}   warm token verification: {verify_us:.1f} µs")
    for target, met in targets.items():
        print(f"  {'ok  ' if met else 'MISS'} {target}")
    out = write_results(
        "api",
        {
            "loader": loader,
            "connections": args.connections,
            "workers": args.workers,
            "seconds": args.seconds,
            "rounds": rounds,
            "bare": bare,
            "authorize": auth,
            "ratio": ratio,
            "verify_us": verify_us,
            "targets": targets,
        },
    )
    print(f"wrote {out}")
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
