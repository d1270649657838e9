"""Hourly and daily rollups: sums of accepted usage per model and client, recomputable, idempotent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from apps.billing.metering import UsageIn, usage_ingest
from apps.billing.models import UsageDaily, UsageEvent, UsageHourly
from apps.billing.tasks import rollup_usage
from apps.billing.usage_rollups import usage_rollup_recompute
from tests.billing.metering_helpers import _clean_budget_counters, make_budget, make_priced  # noqa: F401
from tests.keys.helpers import make_client


def test_rollups_sum_accepted_usage_by_hour_day_model_and_client_and_can_be_rerun(cast):
    make_priced(cast.acme, cast.globex)
    alpha = make_client(tenant=cast.acme, builtin_role="developer", name="alpha").client
    beta = make_client(tenant=cast.acme, builtin_role="developer", name="beta").client
    base = datetime.now(UTC).replace(minute=10, second=0, microsecond=0) - timedelta(hours=3)
    usage_ingest(
        tenant=cast.acme,
        client=alpha,
        events=[
            UsageIn("a1", "openai/gpt-test", 1000, 0, base, tool_calls=("web-search",)),
            UsageIn("a2", "openai/gpt-test", 1000, 1000, base + timedelta(minutes=5)),
            UsageIn("a3", "openai/gpt-test", 500, 0, base + timedelta(hours=1)),
        ],
    )
    usage_ingest(tenant=cast.acme, client=beta, events=[UsageIn("b1", "openai/gpt-test", 2000, 0, base)])
    make_budget(cast.acme, "0.1", scope="client", client=beta)
    usage_ingest(tenant=cast.acme, client=beta, events=[UsageIn("b2", "openai/gpt-test", 9000, 0, base)])  # denied
    assert UsageEvent.objects.get(idempotency_key="b2").status == "denied"
    assert rollup_usage() > 0
    hour = base.replace(minute=0)
    rows = {
        (r.hour, r.client_name): (r.events, r.input_tokens, r.output_tokens, r.tool_calls, r.cost)
        for r in UsageHourly.objects.for_tenant(cast.acme)
    }
    assert rows == {
        (hour, "alpha"): (2, 2000, 1000, 1, Decimal("4.000000")),
        (hour + timedelta(hours=1), "alpha"): (1, 500, 0, 0, Decimal("0.500000")),
        (hour, "beta"): (1, 2000, 0, 0, Decimal("2.000000")),
    }
    daily = sorted((r.day, r.client_name, r.events, r.cost) for r in UsageDaily.objects.for_tenant(cast.acme))
    days = sorted({hour.date(), (hour + timedelta(hours=1)).date()})
    expected_alpha = [(d, "alpha") for d in days]
    assert [(d, c) for d, c, _, _ in daily if c == "alpha"] == expected_alpha
    assert sum(cost for _, _, _, cost in daily) == Decimal("6.500000")
    before = list(UsageDaily.objects.for_tenant(cast.acme).order_by("pk").values_list("events", "cost"))
    rollup_usage()
    usage_rollup_recompute(start=base - timedelta(days=1), end=base + timedelta(days=1))
    assert list(UsageDaily.objects.for_tenant(cast.acme).order_by("pk").values_list("events", "cost")) == before
    assert UsageHourly.objects.for_tenant(cast.globex).count() == 0
