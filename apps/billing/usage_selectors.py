"""Reads for the usage page and its CSV: daily rollups of a tenant, grouped by model or by client."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import QuerySet, Sum

from apps.billing.models import UsageDaily
from apps.tenants.models import Tenant

GROUPINGS = {"model": "model_name", "client": "client_name"}
NO_CLIENT = "(no client)"


@dataclass(frozen=True, slots=True)
class Series:
    """One group's daily figures over the window (one entry per day, zeros included)."""

    label: str
    cost: list[Decimal]
    tokens: list[int]

    @property
    def total_cost(self) -> Decimal:
        return sum(self.cost, Decimal(0))

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)


@dataclass(frozen=True, slots=True)
class UsageSummary:
    days: list[date]
    series: list[Series]  # largest cost first
    currency: str
    events: int = 0
    totals: dict[str, Decimal] = field(default_factory=dict)

    @property
    def total_cost(self) -> Decimal:
        return sum((s.total_cost for s in self.series), Decimal(0))

    @property
    def total_tokens(self) -> int:
        return sum(s.total_tokens for s in self.series)

    def day_rows(self) -> Iterator[tuple[date, Decimal, int]]:
        for index, day in enumerate(self.days):
            yield (
                day,
                sum((s.cost[index] for s in self.series), Decimal(0)),
                sum(s.tokens[index] for s in self.series),
            )


def daily_rows(*, tenant: Tenant, start: date, end: date) -> QuerySet[UsageDaily]:
    """The tenant's daily rollup rows in [start, end], oldest first (the CSV)."""
    return (
        UsageDaily.objects.for_tenant(tenant)
        .filter(day__gte=start, day__lte=end)
        .order_by("day", "model_name", "client_key")
    )


def usage_summary(*, tenant: Tenant, start: date, end: date, by: str, currency: str) -> UsageSummary:
    """Cost and tokens per day and group (``by`` = "model" or "client") from the daily rollups: one query."""
    column = GROUPINGS.get(by, "model_name")
    days = [start + timedelta(days=i) for i in range((end - start).days + 1)]
    index = {day: i for i, day in enumerate(days)}
    cost: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0)] * len(days))
    tokens: dict[str, list[int]] = defaultdict(lambda: [0] * len(days))
    events = 0
    rows = (
        UsageDaily.objects.for_tenant(tenant)
        .filter(day__gte=start, day__lte=end)
        .values("day", column)
        .annotate(cost=Sum("cost"), inp=Sum("input_tokens"), out=Sum("output_tokens"), n=Sum("events"))
    )
    for row in rows:
        label = row[column] or NO_CLIENT
        cost[label][index[row["day"]]] += row["cost"] or Decimal(0)
        tokens[label][index[row["day"]]] += (row["inp"] or 0) + (row["out"] or 0)
        events += row["n"] or 0
    series = [Series(label, cost[label], tokens[label]) for label in cost]
    series.sort(key=lambda s: (-s.total_cost, -s.total_tokens, s.label))
    return UsageSummary(days=days, series=series, currency=currency, events=events)
