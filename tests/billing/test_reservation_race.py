"""Concurrent calls through a live, threaded server: reservations racing for the last euro; one key sent at once."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests

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


def _all_at_once(calls):
    """Run the callables from THREADS threads released together; returns their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


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
    url = f"{live_server.url}/api/v1/budget/reservations"

    def reserve():
        return requests.post(url, json={"estimated_cost": "0.5"}, headers=headers, timeout=30)

    responses = _all_at_once([reserve] * THREADS)
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
    url = f"{live_server.url}/api/v1/budget/reservations"
    responses = _all_at_once(
        [lambda: requests.post(url, json={"estimated_cost": 1}, headers=headers, timeout=30)] * THREADS
    )
    assert sorted(r.status_code for r in responses).count(200) == 1
    (standing,) = ledger.standings([ledger.Line(budget.pk, 10**12)], _period())
    assert standing.spent + standing.reserved == 5_000_000


def test_the_same_idempotency_key_sent_at_once_is_stored_and_counted_once(live_server, cast, racer):
    _, headers = racer
    budget = make_budget(cast.acme, "100")
    url = f"{live_server.url}/api/v1/usage"
    body = event("one-key", inp=2000)
    responses = _all_at_once([lambda: requests.post(url, json=body, headers=headers, timeout=30)] * THREADS)
    statuses = sorted(r.json()["results"][0]["status"] for r in responses)
    assert statuses == ["accepted"] + ["duplicate"] * (THREADS - 1)
    assert UsageEvent.objects.for_tenant(cast.acme).filter(idempotency_key="one-key").count() == 1
    (standing,) = ledger.standings([ledger.Line(budget.pk, 10**12)], _period())
    assert standing.spent == 2_000_000
    assert Decimal(next(r.json() for r in responses)["results"][0]["cost"]) == Decimal("2")
