"""Rate limits per client (429 with Retry-After and RateLimit headers) and token use counted without a DB write."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.api import meter, tasks
from tests.api.conftest import Api

BODY = {"subject": {"type": "client"}, "action": "tenant.view"}


def test_every_answer_carries_ratelimit_headers(api: Api) -> None:
    response = api.post("authorize", BODY)
    assert re.fullmatch(r'"default";q=\d+;w=60', response["RateLimit-Policy"])
    assert re.fullmatch(r'"default";r=\d+;t=\d+', response["RateLimit"])


def test_over_the_clients_limit_is_429_with_retry_after(api: Api, settings) -> None:
    settings.API_RATE_LIMITS = {f"client:{api.created.client.client_id}": 3}
    statuses = [api.post("authorize", BODY).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = api.post("authorize", BODY)
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused["Retry-After"]) <= 20
    assert refused["RateLimit-Policy"] == '"client";q=3;w=60'
    assert refused["RateLimit"].startswith('"client";r=0;')


def test_one_clients_burst_does_not_limit_another(api: Api, cast, settings) -> None:
    from tests.keys.helpers import bearer, issue_token, make_client

    settings.API_RATE_LIMITS = {f"client:{api.created.client.client_id}": 1}
    api.post("authorize", BODY)
    assert api.post("authorize", BODY).status_code == 429
    other = make_client(tenant=cast.acme)
    response = api.http.post("/api/v1/authorize", BODY, content_type="application/json", **bearer(issue_token(other)))
    assert response.status_code == 200


def test_a_tenant_limit_applies_when_the_client_has_none(api: Api, cast, settings) -> None:
    settings.API_RATE_LIMITS = {f"tenant:{cast.acme.pk}": 2}
    assert [api.post("authorize", BODY).status_code for _ in range(3)] == [200, 200, 429]


def _drain_mine(client_id: str) -> list[meter.UseRow]:
    rows: list[meter.UseRow] = []
    meter.drain(lambda batch_id, batch: rows.extend(batch))
    return [row for row in rows if row.client_id == client_id]


def test_token_use_is_counted_in_redis_and_flushed_in_a_batch(api: Api) -> None:
    _drain_mine(api.created.client.client_id)  # whatever earlier tests left
    with CaptureQueriesContext(connection) as queries:
        for _ in range(5):
            api.post("authorize", BODY, HTTP_USER_AGENT="agent/1.0")
    assert not [q for q in queries if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE"))]
    rows = _drain_mine(api.created.client.client_id)
    assert len(rows) == 1
    assert (rows[0].count, rows[0].limited) == (5, 0)
    assert (rows[0].last_user_agent, rows[0].last_ip) == ("agent/1.0", "127.0.0.1")
    assert _drain_mine(api.created.client.client_id) == []  # drained once, not twice


def test_a_crashed_flush_is_picked_up_by_the_next(api: Api) -> None:
    _drain_mine(api.created.client.client_id)
    api.post("authorize", BODY)

    def crash(batch_id: str, rows: list[meter.UseRow]) -> None:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        meter.drain(crash)
    rows = _drain_mine(api.created.client.client_id)
    assert [row.count for row in rows] == [1]


def test_the_flush_task_hands_rows_to_the_keys_service(api: Api, monkeypatch) -> None:
    from apps.keys import services as keys_services

    _drain_mine(api.created.client.client_id)
    got: list[meter.UseRow] = []
    monkeypatch.setattr(keys_services, "token_use_record", lambda *, rows, batch_id: got.extend(rows))
    api.post("authorize", BODY)
    tasks.flush_token_use.delay()
    assert [row.count for row in got if row.client_id == api.created.client.client_id] == [1]


def test_a_busy_clients_lease_never_lets_more_through_than_the_bucket(api: Api, settings) -> None:
    import time

    # 1,200 a minute: 20 tokens a second, leased 2 at a time. Start from a bucket holding 10.
    settings.API_RATE_LIMITS = {f"client:{api.created.client.client_id}": 1200}
    assert meter.lease_size(meter.Limit(1200, "client")) == 2
    bucket = meter.BUCKET_PREFIX + api.created.client.client_id
    api.post("authorize", BODY)
    meter.client().hset(bucket, mapping={"tokens": "10", "ts": meter.client().time()[0] * 1000})
    meter.forget_leases()
    started = time.monotonic()
    statuses = [api.post("authorize", BODY).status_code for _ in range(40)]
    elapsed = time.monotonic() - started
    allowed = statuses.count(200)
    assert 10 <= allowed <= 10 + 20 * (elapsed + 1) + 2  # what the bucket held and refilled, nothing more
    assert 429 in statuses


def test_leased_uses_are_counted_with_the_next_round_trip(api: Api, settings) -> None:
    settings.API_RATE_LIMITS = {f"client:{api.created.client.client_id}": 12_000}  # leases of 20
    _drain_mine(api.created.client.client_id)
    for _ in range(7):
        api.post("authorize", BODY)  # one round trip (1 use sent), six uses from the lease, kept here
    assert sum(row.count for row in _drain_mine(api.created.client.client_id)) == 1
    meter._leases.clear()  # the lease ran out: the next call goes to Redis with what is pending
    api.post("authorize", BODY)
    assert sum(row.count for row in _drain_mine(api.created.client.client_id)) == 7
