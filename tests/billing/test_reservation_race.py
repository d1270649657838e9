"""Concurrent calls through a live, threaded server: reservations racing for the last euro; one key sent at once."""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.api import hot, meter
from apps.billing import ledger
from apps.billing.metering import UsageIn, usage_ingest
from apps.billing.models import Reservation, UsageEvent
from tests.billing.metering_helpers import _clean_budget_counters, event, make_budget, make_priced  # noqa: F401
from tests.keys.helpers import issue_token, make_client, reset_caches

THREADS = 24


@pytest.fixture
def racer(live_server, cast, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 1_000_000
    reset_caches()
    hot.clear()
    meter.forget_leases()
    make_priced(cast.acme, cast.globex)
    created = make_client(tenant=cast.acme, builtin_role="developer")
    return created, {"Authorization": f"Bearer {issue_token(created)}"}


class _Response:
    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self._body = body

    def json(self):
        return json.loads(self._body)


def _all_at_once(live_server, path: str, body: dict, headers: dict, count: int = THREADS) -> list[_Response]:
    """``count`` POSTs of ``body`` released together, each on its own keep-alive connection opened beforehand.

    The connections are opened one by one first (the live server's listen backlog is small), so the
    race is between requests in flight at once, not between connection attempts.
    """
    host, port = live_server.url.removeprefix("http://").split(":")
    connections = []
    for _ in range(count):
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        connection.connect()
        connections.append(connection)
    barrier = threading.Barrier(count)
    payload = json.dumps(body)

    def run(connection: http.client.HTTPConnection) -> _Response:
        barrier.wait()
        connection.request("POST", path, payload, {"Content-Type": "application/json", **headers})
        answer = connection.getresponse()
        return _Response(answer.status, answer.read())

    try:
        with ThreadPoolExecutor(max_workers=count) as pool:
            return list(pool.map(run, connections))
    finally:
        for connection in connections:
            connection.close()


def _period() -> str:
    return datetime.now(UTC).strftime("%Y%m")


def test_parallel_reservations_never_together_exceed_what_is_left(live_server, cast, racer):
    created, headers = racer
    budget = make_budget(cast.acme, "10", name="Acme monthly")
    # 8.50 already spent: 1.50 is left, i.e. three reservations of 0.50 out of many asking at once.
    usage_ingest(
        tenant=cast.acme,
        client=created.client,
        events=[UsageIn("spent", "openai/gpt-test", 8500, 0, datetime.now(UTC))],
    )
    responses = _all_at_once(live_server, "/api/v1/budget/reservations", {"estimated_cost": "0.5"}, headers)
    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * 3 + [409] * (THREADS - 3), codes
    refused = next(r for r in responses if r.status_code == 409).json()
    assert refused["budget"]["name"] == "Acme monthly"
    held = Reservation.objects.for_tenant(cast.acme).filter(status="held")
    assert held.count() == 3
    (standing,) = ledger.standings([ledger.Line(budget.pk, 10**12)], _period())
    assert (standing.spent, standing.reserved) == (8_500_000, 1_500_000)


def test_parallel_reservations_racing_for_the_last_euro(live_server, cast, racer):
    created, headers = racer
    budget = make_budget(cast.acme, "5")
    usage_ingest(
        tenant=cast.acme, client=created.client, events=[UsageIn("four", "openai/gpt-test", 4000, 0, datetime.now(UTC))]
    )
    responses = _all_at_once(live_server, "/api/v1/budget/reservations", {"estimated_cost": 1}, headers)
    assert sorted(r.status_code for r in responses).count(200) == 1
    (standing,) = ledger.standings([ledger.Line(budget.pk, 10**12)], _period())
    assert standing.spent + standing.reserved == 5_000_000


def test_the_same_idempotency_key_sent_at_once_is_stored_and_counted_once(live_server, cast, racer):
    _, headers = racer
    budget = make_budget(cast.acme, "100")
    responses = _all_at_once(live_server, "/api/v1/usage", event("one-key", inp=2000), headers)
    statuses = sorted(r.json()["results"][0]["status"] for r in responses)
    assert statuses == ["accepted"] + ["duplicate"] * (THREADS - 1)
    assert UsageEvent.objects.for_tenant(cast.acme).filter(idempotency_key="one-key").count() == 1
    (standing,) = ledger.standings([ledger.Line(budget.pk, 10**12)], _period())
    assert standing.spent == 2_000_000
    assert Decimal(next(r.json() for r in responses)["results"][0]["cost"]) == Decimal("2")
