#!/usr/bin/env python
"""Audit log benchmark: list pages at 1M events, and record() throughput.

    .venv/bin/python benchmarks/bench_audit.py [--events 1000000] [--requests 30] [--writes 5000] [--reseed]
        [--database bastion_bench] [--trials 3] [--no-legacy]

Uses its own database (``--database``, default ``bastion_bench``) on the server named by DATABASE_URL
(default postgres://postgres@127.0.0.1:5432/): creates it, migrates it, and
seeds it once (later runs reuse the seed unless --reseed or --events changes).

1. Seed: N events in one tenant's chain with COPY; links computed in Python
   with apps.audit.chain.link, so the seeded chain verifies. Realistic spread:
   skewed actors (users, system, API clients, anonymous sign-in attempts),
   ~25 actions, 90/6/4 % success/failure/denied, 90 days of timestamps.
   Then VACUUM ANALYZE.
2. Pages: median server time (Django test client, in process: middleware,
   view, queries, template) of the first audit page and of a filtered page
   (actor e-mail + 7-day range), over --requests requests each; query counts.
3. record(): N single events in autocommit, then in transactions of 100; then
   two processes (own connections) writing to two tenants at once, as a ratio
   of the single-process rate. record() computes the link in Python from the
   head this process last saw and appends with one statement that locks the
   head only if it still is that head (the key never reaches the database).
4. For comparison (unless --no-legacy), interleaved trial by trial: the
   previous record() (always lock the head, then insert: two statements, four
   round trips in autocommit), and the old single-statement append that
   computed the link in SQL from HMAC pads sent as parameters (issue #7: that
   exposed the key), timed on a chain of its own with the audit triggers off
   for that session as they were then; reported as ratios.
5. Two processes appending to the same tenant's chain (so each one's cached
   head is usually stale), then audit_verify of that chain.

Prints a table and writes bench-results/audit.json.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.common import database_url, ensure_database, setup_django, write_results  # noqa: E402

BENCH_DB = "bastion_bench"
TENANT_SLUG = "bench"
WRITER_SLUGS = ("bench-w1", "bench-w2")
LEGACY_SLUG = "bench-legacy"
TARGET_PAGE_MS = 150.0
TARGET_RECORD_RATE = 1000.0
TARGET_TWO_PROCESS_RATIO = 1.6
TXN_BATCH = 100


# --- set-up ---------------------------------------------------------------------------


# --- seeding --------------------------------------------------------------------------

ACTIONS = [
    # (action, target type, weight)
    ("auth.sign_in", "user", 30),
    ("auth.sign_out", "user", 10),
    ("auth.mfa_verify", "user", 8),
    ("api.token_issue", "api_client", 25),
    ("guardrail.tool_call_blocked", "tool", 6),
    ("dataset.read", "dataset", 12),
    ("dataset.update", "dataset", 3),
    ("tool.execute", "tool", 15),
    ("member.invite", "membership", 2),
    ("member.accept", "membership", 2),
    ("member.role_change", "membership", 1),
    ("member.remove", "membership", 1),
    ("role.create", "role", 1),
    ("role.update", "role", 1),
    ("role.bind", "role", 1),
    ("grant.add", "dataset", 1),
    ("grant.remove", "dataset", 1),
    ("breakglass.request", "elevation", 1),
    ("breakglass.approve", "elevation", 1),
    ("billing.budget_update", "budget", 1),
    ("apiclient.create", "api_client", 1),
    ("apiclient.revoke", "api_client", 1),
    ("key.rotate", "signing_key", 1),
    ("sso.connection_update", "sso_connection", 1),
    ("audit.export", "audit_log", 1),
]
USER_AGENTS = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "python-httpx/0.27.0",
    "bastion-sdk/1.4.2 (python 3.12)",
]
COPY_COLUMNS = (
    "chain, seq, occurred_at, tenant_id, actor_type, actor_id, actor_display, action, target_type, target_id, "
    "result, ip, user_agent, request_id, metadata, prev_hash, hash"
)
COPY_TYPES = [
    "int8",
    "int8",
    "timestamptz",
    "int8",
    "varchar",
    "varchar",
    "varchar",
    "varchar",
    "varchar",
    "varchar",
    "varchar",
    "inet",
    "varchar",
    "varchar",
    "jsonb",
    "bytea",
    "bytea",
]


def seed_people(tenant_count_users: int = 60) -> tuple[Any, list[Any], Any]:
    """The bench tenant, its users (first one is the owner who browses), and nothing audited yet."""
    from apps.accounts.models import User
    from apps.tenants.models import Membership, Tenant

    tenant, _ = Tenant.objects.get_or_create(slug=TENANT_SLUG, defaults={"name": "Bench Corp"})
    for slug in (*WRITER_SLUGS, LEGACY_SLUG):
        Tenant.objects.get_or_create(slug=slug, defaults={"name": slug})
    users = []
    for index in range(tenant_count_users):
        user, _ = User.objects.get_or_create(
            email=f"user{index:03d}@bench.example", defaults={"full_name": f"U {index}"}
        )
        Membership.objects.get_or_create(
            tenant=tenant,
            user=user,
            defaults={"status": "active", "role": "owner" if index == 0 else "member", "joined_at": datetime.now(UTC)},
        )
        users.append(user)
    return tenant, users, users[0]


def seed_events(tenant: Any, users: list[Any], count: int, seed: int = 42) -> dict[str, Any]:
    """COPY ``count`` chained events into the tenant's chain; returns timing figures."""
    import psycopg
    from django.db import connection

    from apps.audit import chain as audit_chain

    rng = random.Random(seed)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=90)
    span = (now - start).total_seconds()
    # Sorted random instants: seq order follows time order, as appends do.
    offsets = sorted(rng.random() * span for _ in range(count))
    user_weights = [1.0 / (rank + 1) ** 0.9 for rank in range(len(users))]
    action_names = [a for a, _, _ in ACTIONS]
    action_targets = {a: t for a, t, _ in ACTIONS}
    action_weights = [w for _, _, w in ACTIONS]
    api_clients = [(f"cli_{n:04d}", f"integration-{n}") for n in range(8)]
    subnets = ["10.20.{}.{}", "192.0.2.{}", "198.51.100.{}", "2001:db8:{:x}::{:x}"]

    chain_id = tenant.pk
    prev = before_last = audit_chain.GENESIS
    started = time.perf_counter()
    hashing = 0.0
    dsn = connection.get_connection_params()
    conninfo = {k: v for k, v in dsn.items() if k in {"dbname", "user", "password", "host", "port"}}
    with psycopg.connect(**conninfo) as conn, conn.cursor() as cursor:
        # The seed writes a whole chain and its head at once, which the audit triggers
        # (head advances one event at a time) would refuse row by row: a superuser
        # session switches user triggers off for the load, in this bench database only.
        cursor.execute("SET session_replication_role = replica")
        with cursor.copy(f"COPY audit_auditevent ({COPY_COLUMNS}) FROM STDIN") as copy:
            copy.set_types(COPY_TYPES)
            for seq, offset in enumerate(offsets, start=1):
                occurred_at = start + timedelta(seconds=offset)
                roll = rng.random()
                if roll < 0.80:
                    user = rng.choices(users, weights=user_weights)[0]
                    actor = ("user", str(user.pk), user.email)
                elif roll < 0.90:
                    actor = ("system", "", "system")
                elif roll < 0.97:
                    client_id, name = rng.choice(api_clients)
                    actor = ("api_client", client_id, name)
                else:
                    actor = ("anonymous", "", f"guess{rng.randrange(500)}@example.net")
                action = rng.choices(action_names, weights=action_weights)[0]
                if actor[0] == "anonymous":
                    action = "auth.sign_in"
                result_roll = rng.random()
                result = "success" if result_roll < 0.90 else ("failure" if result_roll < 0.96 else "denied")
                pattern = rng.choice(subnets)
                ip = pattern.format(rng.randrange(1, 255), rng.randrange(1, 255))
                metadata = {"n": seq % 97, "source": "console" if actor[0] == "user" else "api"}
                if action.startswith("member."):
                    metadata["role"] = rng.choice(["owner", "admin", "member", "viewer"])
                values = {
                    "chain": chain_id,
                    "occurred_at": occurred_at,
                    "tenant_id": tenant.pk,
                    "actor_type": actor[0],
                    "actor_id": actor[1],
                    "actor_display": actor[2],
                    "action": action,
                    "target_type": action_targets[action],
                    "target_id": str(rng.randrange(1, 5000)),
                    "result": result,
                    "ip": audit_chain.normalize_ip(ip),
                    "user_agent": rng.choice(USER_AGENTS),
                    "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                }
                t0 = time.perf_counter()
                link = audit_chain.link(prev, audit_chain.payload(**values, metadata=metadata))
                hashing += time.perf_counter() - t0
                copy.write_row(
                    (
                        chain_id,
                        seq,
                        occurred_at,
                        tenant.pk,
                        *(values[k] for k in ("actor_type", "actor_id", "actor_display", "action")),
                        *(values[k] for k in ("target_type", "target_id", "result", "ip", "user_agent")),
                        values["request_id"],
                        metadata,  # a dict: the jsonb dumper encodes it (a str would become a JSON string)
                        prev,
                        link,
                    )
                )
                before_last, prev = prev, link
        cursor.execute(
            "INSERT INTO audit_auditchainhead (chain, seq, prev_hash, head_hash, updated_at) "
            "VALUES (%s, %s, %s, %s, now())",
            [chain_id, count, before_last, prev],
        )
        conn.commit()
    copied = time.perf_counter() - started
    t0 = time.perf_counter()
    with psycopg.connect(**conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE audit_auditevent")
        conn.execute("VACUUM ANALYZE accounts_user")
    return {
        "events": count,
        "copy_seconds": round(copied, 1),
        "python_hashing_seconds": round(hashing, 1),
        "vacuum_analyze_seconds": round(time.perf_counter() - t0, 1),
    }


def seeded_count(tenant: Any) -> int:
    from apps.audit.models import AuditChainHead

    head = AuditChainHead.objects.filter(chain=tenant.pk).first()
    return head.seq if head else 0


# --- pages ----------------------------------------------------------------------------


def _check(response: Any, url: str, params: dict[str, str]) -> None:
    if response.status_code != 200:
        raise SystemExit(f"GET {url} {params} answered {response.status_code}")


def time_page(client: Any, url: str, params: dict[str, str], requests: int) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(3):  # warm caches and the connection
        _check(client.get(url, params), url, params)
    samples = []
    for _ in range(requests):
        t0 = time.perf_counter()
        response = client.get(url, params)
        samples.append((time.perf_counter() - t0) * 1000)
        _check(response, url, params)
    sql_seconds = 0.0

    def timed(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        nonlocal sql_seconds
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            sql_seconds += time.perf_counter() - started

    with CaptureQueriesContext(connection) as queries, connection.execute_wrapper(timed):
        response = client.get(url, params)
    # No test instrumentation (it would slow rendering): read the figures off the HTML.
    body = response.content.decode()
    rows = body.count("<time datetime=")
    older = re.search(r'rel="next" href="[^"]*cursor=([A-Za-z0-9_-]+)"', body)
    sql_ms = sql_seconds * 1000  # round trips included, one request
    samples.sort()
    return {
        "url": url,
        "params": params,
        "requests": requests,
        "rows": rows,
        "median_ms": round(statistics.median(samples), 1),
        "p90_ms": round(samples[int(len(samples) * 0.9) - 1], 1),
        "min_ms": round(samples[0], 1),
        "queries": len(queries),
        "sql_ms": round(sql_ms, 1),
        "next_cursor": older.group(1) if older else None,
    }


def explain(sql_filters: dict[str, Any], tenant: Any) -> list[str]:
    from django.db import connection

    from apps.audit.selectors import AuditFilters, event_queryset

    qs = event_queryset(tenant=tenant, filters=AuditFilters(**sql_filters)).order_by("-occurred_at", "-id")[:51]
    sql, params = qs.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) {sql}", params)
        return [row[0] for row in cursor.fetchall()]


def bench_pages(tenant: Any, owner: Any, users: list[Any], requests: int) -> dict[str, Any]:
    from django.test import Client

    client = Client()
    client.force_login(owner)
    url = f"/t/{tenant.slug}/audit/"
    now = datetime.now(UTC)
    week = {
        "date_from": (now - timedelta(days=50)).date().isoformat(),
        "date_to": (now - timedelta(days=44)).date().isoformat(),
    }
    actor = users[9].email  # a mid-frequency user
    first = time_page(client, url, {}, requests)
    filtered = time_page(client, url, {"actor": actor, **week}, requests)
    second = time_page(client, url, {"cursor": first.pop("next_cursor")}, requests)
    filtered.pop("next_cursor")
    second.pop("next_cursor")
    action_prefix = time_page(client, url, {"action": "member.", "result": "denied"}, requests)
    action_prefix.pop("next_cursor")
    rare_prefix = time_page(client, url, {"action": "breakglass.", "result": "denied"}, requests)
    rare_prefix.pop("next_cursor")
    anonymous = time_page(client, url, {"actor": "guess7@example.net"}, requests)
    anonymous.pop("next_cursor")
    from apps.core.filtering import parse_moment

    start = parse_moment(week["date_from"])[0]
    end = parse_moment(week["date_to"])[0] + timedelta(days=1)
    return {
        "first_page": first,
        "filtered_actor_and_week": filtered,
        "second_page": second,
        "filtered_action_prefix_and_result": action_prefix,
        "filtered_rare_action_prefix_and_result": rare_prefix,
        "filtered_anonymous_display": anonymous,
        "plan_filtered": explain({"actor": actor, "occurred_from": start, "occurred_before": end}, tenant),
    }


# --- record() throughput --------------------------------------------------------------


@contextmanager
def _locked_path_only() -> Iterator[None]:
    """record() as committed before the optimistic append: lock the head, hash, insert (no cached head)."""
    from apps.audit import services

    saved = services._OPTIMISTIC_ATTEMPTS
    services._OPTIMISTIC_ATTEMPTS = 0
    try:
        yield
    finally:
        services._OPTIMISTIC_ATTEMPTS = saved


def _write(
    slug: str, n: int, batch: int, *, durable: bool = True, locked: bool = False, statements: list[int] | None = None
) -> float:
    """Record ``n`` events into a tenant's chain; ``batch`` > 1 groups them in transactions. Returns seconds.

    ``durable=False`` is a diagnostic only: the session stops waiting for the
    WAL flush at commit (synchronous_commit off), which shows what record()
    costs when the disk's fsync latency is taken out. ``locked=True`` times the
    previous record() (always lock the head first). ``statements``, if given,
    receives the number of statements sent (BEGIN and COMMIT not included).
    """
    from django.db import connection, transaction

    from apps.audit.services import Actor, record
    from apps.core import context
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.get(slug=slug)
    actor = Actor("user", "1", "writer@bench.example")
    metadata = {"role": "member", "email": "someone@example.com", "note": "benchmark"}
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO on" if durable else "SET synchronous_commit TO off")
    sent = [0]

    def count(execute: Any, sql: str, params: Any, many: bool, context_: Any) -> Any:
        sent[0] += 1
        return execute(sql, params, many, context_)

    counting = connection.execute_wrapper(count) if statements is not None else nullcontext()
    path = _locked_path_only() if locked else nullcontext()
    with context.bind(ip="192.0.2.1", user_agent="bench/1.0"), counting, path:
        t0 = time.perf_counter()
        if batch <= 1:
            for index in range(n):
                record(
                    "member.invite",
                    tenant=tenant,
                    actor=actor,
                    target_type="membership",
                    target_id=index,
                    metadata=metadata,
                )
        else:
            for first in range(0, n, batch):
                with transaction.atomic():
                    for index in range(first, min(n, first + batch)):
                        record(
                            "member.invite",
                            tenant=tenant,
                            actor=actor,
                            target_type="membership",
                            target_id=index,
                            metadata=metadata,
                        )
        elapsed = time.perf_counter() - t0
    with connection.cursor() as cursor:
        cursor.execute("RESET synchronous_commit")
    if statements is not None:
        statements.append(sent[0])
    return elapsed


# The pre-#7 append, kept here only to measure against: it sent the HMAC pads of the
# key as parameters (visible in pg_stat_activity and logs). Never use it elsewhere.
_LEGACY_APPEND_SQL = """
WITH head AS (
    INSERT INTO audit_auditchainhead AS h (chain, seq, prev_hash, head_hash, updated_at)
    VALUES (%(chain)s, 1, %(genesis)s,
            sha256(%(opad)s || sha256(%(ipad)s || %(genesis)s || %(payload)s)), now())
    ON CONFLICT (chain) DO UPDATE SET
        seq = h.seq + 1,
        prev_hash = h.head_hash,
        head_hash = sha256(%(opad)s || sha256(%(ipad)s || h.head_hash || %(payload)s)),
        updated_at = now()
    RETURNING seq, prev_hash, head_hash
)
INSERT INTO audit_auditevent (
    chain, seq, occurred_at, tenant_id, actor_type, actor_id, actor_display, action,
    target_type, target_id, result, ip, user_agent, request_id, metadata, prev_hash, hash
)
SELECT %(chain)s, head.seq, %(occurred_at)s, %(tenant_id)s, %(actor_type)s, %(actor_id)s,
       %(actor_display)s, %(action)s, %(target_type)s, %(target_id)s, %(result)s, %(ip)s,
       %(user_agent)s, %(request_id)s, %(metadata)s::jsonb, head.prev_hash, head.head_hash
FROM head
RETURNING id
"""


def _legacy_record(tenant: Any, index: int, metadata: dict[str, Any], pads: tuple[bytes, bytes]) -> int:
    """The old record(): same validation, masking and payload, then the one-statement SQL-side HMAC."""
    import json as _json

    from django.db import connection
    from django.utils import timezone

    from apps.audit import chain as audit_chain
    from apps.audit.redaction import mask_mapping, mask_text
    from apps.core import context

    ctx = context.current()
    clean = audit_chain.normalize_json(mask_mapping(metadata))
    text = _json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    values = {
        "chain": tenant.pk,
        "occurred_at": timezone.now(),
        "tenant_id": tenant.pk,
        "actor_type": "user",
        "actor_id": "1",
        "actor_display": mask_text("writer@bench.example"),
        "action": "member.invite",
        "target_type": "membership",
        "target_id": str(index),
        "result": "success",
        "ip": audit_chain.normalize_ip(ctx.ip),
        "user_agent": mask_text(ctx.user_agent),
        "request_id": ctx.request_id,
    }
    payload = audit_chain.payload(**values, metadata=clean)
    with connection.cursor() as cursor:
        cursor.execute(
            _LEGACY_APPEND_SQL,
            {
                **values,
                "metadata": text,
                "payload": payload,
                "genesis": audit_chain.GENESIS,
                "ipad": pads[0],
                "opad": pads[1],
            },
        )
        return cursor.fetchone()[0]


def _write_legacy(n: int, batch: int, *, durable: bool = True) -> float:
    """Like _write, with the pre-#7 append on its own chain (audit triggers off for the session)."""
    import hashlib

    from django.conf import settings
    from django.db import connection, transaction

    from apps.core import context
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.get(slug=LEGACY_SLUG)
    raw = settings.AUDIT_HMAC_KEY.encode()
    raw = (hashlib.sha256(raw).digest() if len(raw) > 64 else raw).ljust(64, b"\0")
    pads = (bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw))
    metadata = {"role": "member", "email": "someone@example.com", "note": "benchmark"}
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("SET synchronous_commit TO on" if durable else "SET synchronous_commit TO off")
    try:
        with context.bind(ip="192.0.2.1", user_agent="bench/1.0"):
            t0 = time.perf_counter()
            if batch <= 1:
                for index in range(n):
                    _legacy_record(tenant, index, metadata, pads)
            else:
                for first in range(0, n, batch):
                    with transaction.atomic():
                        for index in range(first, min(n, first + batch)):
                            _legacy_record(tenant, index, metadata, pads)
            return time.perf_counter() - t0
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET session_replication_role")
            cursor.execute("RESET synchronous_commit")


def _worker(url: str, slug: str, n: int, batch: int, durable: bool, barrier: Any, out: Any) -> None:
    setup_django(url)
    _write(slug, 20, 1)  # connect and warm up
    barrier.wait()
    sent: list[int] = []
    t0 = time.perf_counter()
    _write(slug, n, batch, durable=durable, statements=sent)
    out.put((slug, t0, time.perf_counter(), sent[0]))


def two_processes(
    url: str, n: int, batch: int, *, durable: bool = True, slugs: tuple[str, ...] = WRITER_SLUGS
) -> dict[str, Any]:
    """Two processes (own connections) writing ``n`` events each, one per slug in ``slugs``."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(slugs))
    out = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(url, slug, n, batch, durable, barrier, out)) for slug in slugs]
    for proc in procs:
        proc.start()
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    wall = max(end for _, _, end, _ in results) - min(start for _, start, _, _ in results)
    sent = sum(count for *_, count in results)
    return {
        "events": n * len(procs),
        "seconds": round(wall, 2),
        "rate": round(n * len(procs) / wall),
        "statements_per_event": round(sent / (n * len(procs)), 2),
    }


def bench_one_chain(url: str, n: int, trials: int) -> dict[str, Any]:
    """Two processes appending to the *same* tenant's chain (each process's cached head goes stale
    all the time), then audit_verify of that chain: rates, statements per event, and whether it verified."""
    from apps.audit.verification import verify_chain
    from apps.tenants.models import Tenant

    slug = WRITER_SLUGS[0]
    out: dict[str, Any] = {}
    for key, batch in (("autocommit", 1), ("transactions", TXN_BATCH)):
        runs = [two_processes(url, n, batch, slugs=(slug, slug)) for _ in range(trials)]
        rates = [run["rate"] for run in runs]
        out[key] = {
            "rate": round(statistics.median(rates)),
            "trials": rates,
            "statements_per_event": statistics.median(run["statements_per_event"] for run in runs),
        }
    report = verify_chain(Tenant.objects.get(slug=slug).pk)
    out["verify_ok"] = report.ok
    out["verify_checked"] = report.checked
    out["verify_problem"] = report.problem.detail if report.problem else None
    return out


def _scenario(url: str, n: int, batch: int, durable: bool, trials: int) -> dict[str, Any]:
    """Single-process and two-process rates, interleaved over ``trials`` (the machine may be shared):
    medians, their ratio, and every trial."""
    singles, pairs = [], []
    for _ in range(trials):
        singles.append(n / _write(WRITER_SLUGS[0], n, batch, durable=durable))
        pairs.append(two_processes(url, n, batch, durable=durable)["rate"])
    single, pair = statistics.median(singles), statistics.median(pairs)
    return {
        "single_rate": round(single),
        "two_process_rate": round(pair),
        "ratio": round(pair / single, 2),
        "single_trials": [round(rate) for rate in singles],
        "two_process_trials": [round(rate) for rate in pairs],
    }


# Rounds per trial in the comparison: short interleaved rounds, so that load from
# other work on a shared machine (and on a shared WAL disk) hits all three alike.
ROUNDS_PER_TRIAL = 5


def bench_legacy(n: int, trials: int) -> dict[str, Any]:
    """Single-process rates of record() (optimistic one-statement append), the previous record()
    (always lock the head first) and the pre-#7 SQL-side HMAC append.

    Each trial is split into ROUNDS_PER_TRIAL short rounds; in each round the
    three run one after the other (the order rotates), and the ratios are taken
    per round. Reported: median rates, the median of the per-round ratios, and
    every round's rates.
    """
    out: dict[str, Any] = {}
    _write_legacy(50, 1)  # warm up
    rounds = trials * ROUNDS_PER_TRIAL
    chunk = max(TXN_BATCH, n // ROUNDS_PER_TRIAL)
    writers = {
        "record": lambda batch, durable, sent: _write(WRITER_SLUGS[0], chunk, batch, durable=durable, statements=sent),
        "locked": lambda batch, durable, sent: _write(WRITER_SLUGS[0], chunk, batch, durable=durable, locked=True),
        "legacy": lambda batch, durable, sent: _write_legacy(chunk, batch, durable=durable),
    }
    names = list(writers)
    for key, batch, durable in (
        ("autocommit", 1, True),
        ("transactions", TXN_BATCH, True),
        ("diagnostic_autocommit_no_commit_flush", 1, False),
    ):
        rates: dict[str, list[float]] = {name: [] for name in names}
        sent: list[int] = []
        for round_ in range(rounds):
            for offset in range(len(names)):
                name = names[(round_ + offset) % len(names)]
                rates[name].append(chunk / writers[name](batch, durable, sent))
        per_round = {
            other: [new / old for new, old in zip(rates[other], rates["legacy"], strict=True)]
            for other in ("record", "locked")
        }
        out[key] = {
            "events_per_round": chunk,
            "rounds": rounds,
            "record_rate": round(statistics.median(rates["record"])),
            "locked_rate": round(statistics.median(rates["locked"])),
            "legacy_rate": round(statistics.median(rates["legacy"])),
            "ratio_record_to_legacy": round(statistics.median(per_round["record"]), 2),
            "ratio_locked_to_legacy": round(statistics.median(per_round["locked"]), 2),
            "ratio_record_to_locked": round(
                statistics.median(new / old for new, old in zip(rates["record"], rates["locked"], strict=True)), 2
            ),
            "record_statements_per_event": round(statistics.median(sent) / chunk, 2),
            **{f"{name}_rounds": [round(rate) for rate in rates[name]] for name in names},
        }
    return out


def bench_record(url: str, n: int, trials: int, *, legacy: bool = True) -> dict[str, Any]:
    _write(WRITER_SLUGS[0], 50, 1)  # warm up
    figures = {
        "events_per_process_run": n,
        "trials": trials,
        "transaction_batch": TXN_BATCH,
        "autocommit": _scenario(url, n, 1, True, trials),
        "transactions": _scenario(url, n, TXN_BATCH, True, trials),
        "diagnostic_no_commit_flush": _scenario(url, n, 1, False, trials),
    }
    if legacy:
        figures["versus_legacy"] = bench_legacy(n, trials)
    figures["one_chain_two_processes"] = bench_one_chain(url, n, trials)
    return figures


# --- report ---------------------------------------------------------------------------


def bench_verify(tenant: Any) -> dict[str, Any]:
    """Verify the seeded chain end to end (the seed must verify, and this is how long a full check takes)."""
    from apps.audit.verification import verify_chain

    t0 = time.perf_counter()
    report = verify_chain(tenant.pk)
    elapsed = time.perf_counter() - t0
    return {
        "ok": report.ok,
        "checked": report.checked,
        "seconds": round(elapsed, 1),
        "rate": round(report.checked / elapsed) if elapsed else None,
        "problem": report.problem.detail if report.problem else None,
    }


def server_facts() -> dict[str, Any]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0]
        facts = {"postgres": version.split(",")[0]}
        for name in ("synchronous_commit", "fsync", "shared_buffers", "work_mem"):
            cursor.execute(f"SHOW {name}")
            facts[name] = cursor.fetchone()[0]
        cursor.execute("SELECT pg_size_pretty(pg_total_relation_size('audit_auditevent'))")
        facts["audit_table_size"] = cursor.fetchone()[0]
    facts["cpus"] = os.cpu_count()
    facts["load_average"] = [round(load, 2) for load in os.getloadavg()]
    facts["python"] = platform.python_version()
    return facts


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_table(results: dict[str, Any]) -> None:
    pages = results["pages"]
    rec = results["record"]
    lines = [
        f"Audit benchmark — {results['seed']['events']:,} events in one tenant chain ({results['server']['postgres']}, "
        f"{results['server']['cpus']} CPUs, synchronous_commit={results['server']['synchronous_commit']})",
        "",
        f"{'measure':<46}{'median ms':>10}{'p90 ms':>9}{'SQL ms':>8}{'queries':>9}{'rows':>6}  target",
    ]
    for key, label in (
        ("first_page", "first page"),
        ("filtered_actor_and_week", "filtered: actor e-mail + 7-day range"),
        ("second_page", "second page (keyset cursor)"),
        ("filtered_action_prefix_and_result", "extra: action prefix member. + denied"),
        ("filtered_rare_action_prefix_and_result", "extra: rare prefix breakglass. + denied"),
        ("filtered_anonymous_display", "extra: non-user actor (display snapshot)"),
    ):
        page = pages[key]
        target = f"< {TARGET_PAGE_MS:.0f} ms {verdict(page['median_ms'] < TARGET_PAGE_MS)}"
        lines.append(
            f"{label:<46}{page['median_ms']:>10}{page['p90_ms']:>9}{page['sql_ms']:>8}{page['queries']:>9}"
            f"{page['rows']:>6}  {target}"
        )
    lines += [
        "",
        f"record() throughput, {rec['events_per_process_run']:,} events per process run, "
        f"median of {rec['trials']} interleaved trials",
        f"{'':<46}{'1 proc/s':>10}{'2 procs/s':>10}{'ratio':>8}  targets: >= {TARGET_RECORD_RATE:.0f}/s, "
        f">= {TARGET_TWO_PROCESS_RATIO}x",
    ]
    for key, label in (
        ("autocommit", "autocommit (one event per transaction)"),
        ("transactions", f"transactions of {TXN_BATCH} events"),
        ("diagnostic_no_commit_flush", "diagnostic: autocommit, synchronous_commit=off"),
    ):
        row = rec[key]
        verdicts = (
            f"{verdict(row['single_rate'] >= TARGET_RECORD_RATE)}, {verdict(row['ratio'] >= TARGET_TWO_PROCESS_RATIO)}"
        )
        lines.append(f"{label:<46}{row['single_rate']:>10}{row['two_process_rate']:>10}{row['ratio']:>7}x  {verdicts}")
    if "versus_legacy" in rec:
        lines += [
            "",
            "record() (optimistic one-statement append, HMAC in Python) versus the previous record() (lock the",
            "head first) and the pre-#7 SQL-side HMAC append, 1 process, interleaved rounds (ratios: median",
            "of the per-round ratios)",
        ]
        lines.append(
            f"{'':<38}{'record/s':>9}{'stmts/ev':>9}{'locked/s':>9}{'legacy/s':>9}{'record/legacy':>14}"
            f"{'locked/legacy':>14}"
        )
        for key, label in (
            ("autocommit", "autocommit"),
            ("transactions", f"transactions of {TXN_BATCH} events"),
            ("diagnostic_autocommit_no_commit_flush", "diagnostic: autocommit, sync_commit=off"),
        ):
            row = rec["versus_legacy"][key]
            lines.append(
                f"{label:<38}{row['record_rate']:>9}{row['record_statements_per_event']:>9}{row['locked_rate']:>9}"
                f"{row['legacy_rate']:>9}{row['ratio_record_to_legacy']:>13}x{row['ratio_locked_to_legacy']:>13}x"
            )
    one = rec["one_chain_two_processes"]
    lines += ["", "Two processes appending to one tenant's chain (stale cached heads), then audit_verify of it"]
    for key, label in (("autocommit", "autocommit"), ("transactions", f"transactions of {TXN_BATCH} events")):
        row = one[key]
        lines.append(f"{label:<38}{row['rate']:>9}/s  {row['statements_per_event']} statements per event")
    verified = "ok" if one["verify_ok"] else f"FAILED: {one['verify_problem']}"
    lines.append(f"audit_verify of that chain: {verified}, {one['verify_checked']:,} events")
    check = results["verify"]
    lines += [
        "",
        f"audit_verify of the seeded chain: {'ok' if check['ok'] else 'FAILED: ' + str(check['problem'])}, "
        f"{check['checked']:,} events in {check['seconds']} s ({check['rate']:,} events/s)",
    ]
    lines += ["", "Plan of the filtered page query:", *("  " + line for line in pages["plan_filtered"])]
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--writes", type=int, default=5000, help="events per process per record() run")
    parser.add_argument("--trials", type=int, default=3, help="interleaved record() trials (median reported)")
    parser.add_argument("--reseed", action="store_true", help="drop and re-create the bench database")
    parser.add_argument("--database", default=BENCH_DB, help="the benchmark's own database (created if missing)")
    parser.add_argument("--no-legacy", action="store_true", help="skip the comparison with the pre-#7 append")
    args = parser.parse_args()

    url = database_url(args.database)
    ensure_database(url, drop=args.reseed)
    setup_django(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    tenant, users, owner = seed_people()
    have = seeded_count(tenant)
    if have not in (0, args.events):
        print(f"{BENCH_DB} holds {have:,} events, not {args.events:,}: re-creating it", flush=True)
        ensure_database(url, drop=True)
        from django.db import connection

        connection.close()
        call_command("migrate", verbosity=0)
        tenant, users, owner = seed_people()
        have = 0
    if have == 0:
        print(f"Seeding {args.events:,} events with COPY …", flush=True)
        seed = seed_events(tenant, users, args.events)
    else:
        seed = {"events": have, "reused": True}
    print("Timing pages …", flush=True)
    # Earlier runs' record() benchmarks added newer events of other tenants;
    # fresh statistics (what autovacuum keeps in production) for the planner.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE audit_auditevent")
    pages = bench_pages(tenant, owner, users, args.requests)
    print("Verifying the seeded chain …", flush=True)
    verify = bench_verify(tenant)
    facts = server_facts()
    print("Timing record() …", flush=True)
    record_figures = bench_record(url, args.writes, args.trials, legacy=not args.no_legacy)
    record_figures["load_average_after"] = [round(load, 2) for load in os.getloadavg()]
    results = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": facts,
        "seed": seed,
        "pages": pages,
        "verify": verify,
        "record": record_figures,
        "targets": {
            "page_median_ms": TARGET_PAGE_MS,
            "record_rate": TARGET_RECORD_RATE,
            "two_process_ratio": TARGET_TWO_PROCESS_RATIO,
        },
    }
    print_table(results)
    out = write_results("audit", results)
    print(f"\nWrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
