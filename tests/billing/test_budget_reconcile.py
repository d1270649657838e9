"""Reconciliation: Redis counters that drifted from the database are repaired; lost holds are put back."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from apps.billing import ledger
from apps.billing.budgets import budgets_reconcile
from apps.billing.metering import UsageIn, usage_ingest
from apps.billing.models import Reservation
from apps.billing.reservations import reservation_create, reservation_settle, reservations_expire
from apps.billing.tasks import expire_reservations, reconcile_budgets
from tests.billing.metering_helpers import _clean_budget_counters, make_budget, make_priced  # noqa: F401
from tests.keys.helpers import make_client


def _period() -> str:
    return datetime.now(UTC).strftime("%Y%m")


def _standing(budget):
    (standing,) = ledger.standings([ledger.Line(budget.pk, 10**12)], _period())
    return standing


def test_reconciliation_fixes_drifted_counters_from_the_database(cast):
    make_priced(cast.acme, cast.globex)
    client = make_client(tenant=cast.acme, builtin_role="developer").client
    budget = make_budget(cast.acme, "100")
    other = make_budget(cast.acme, "50", scope="client", client=client)
    now = datetime.now(UTC)
    usage_ingest(tenant=cast.acme, client=client, events=[UsageIn("a", "openai/gpt-test", 3000, 500, now)])  # 4 EUR
    held = reservation_create(tenant=cast.acme, client=client, amount=Decimal("6"))
    settled = reservation_create(tenant=cast.acme, client=client, amount=Decimal("2"))
    reservation_settle(tenant=cast.acme, uid=str(settled.uid), actual=Decimal("1.25"))
    assert (_standing(budget).spent, _standing(budget).reserved) == (5_250_000, 6_000_000)
    # Drift: a counter too high (a request died after Redis), the other wiped (Redis restarted).
    r = ledger.client()
    r.hset(ledger.period_key(_period(), budget.pk)[0], "spent", 99_000_000)
    for key in ledger.period_key(_period(), other.pk):
        r.delete(key)
    assert reconcile_budgets() >= 2  # the beat task, run in place
    assert (_standing(budget).spent, _standing(budget).reserved) == (5_250_000, 6_000_000)
    assert (_standing(other).spent, _standing(other).reserved) == (5_250_000, 6_000_000)  # the hold is back
    assert budgets_reconcile().repaired == 0  # nothing left to fix
    held.refresh_from_db()
    assert held.status == "held"


def test_reconciliation_leaves_a_counter_that_moved_meanwhile(cast):
    budget = make_budget(cast.acme, "100")
    line = ledger.Line(budget.pk, 10**12)
    ledger.charge([line], _period(), [(1_000_000, [0])])
    # Read 0 as "expected" (stale): the counter reads 1 EUR now, so it is left for the next run.
    assert ledger.set_spent([line], _period(), [(0, 0)]) == 0
    assert _standing(budget).spent == 1_000_000
    assert ledger.set_spent([line], _period(), [(1_000_000, 0)]) == 1


def test_expiry_task_marks_rows_and_frees_the_money(cast):
    client = make_client(tenant=cast.acme, builtin_role="developer").client
    budget = make_budget(cast.acme, "10")
    row = reservation_create(tenant=cast.acme, client=client, amount=Decimal("7"), ttl_seconds=60)
    Reservation.objects.filter(pk=row.pk).update(expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert expire_reservations() == 1
    row.refresh_from_db()
    assert row.status == "expired"
    assert _standing(budget).reserved == 0
    assert reservations_expire() == 0
