"""What the detectors read from metered usage: a small interface and its one implementation.

The detectors (``apps.alerts.metrics`` and ``apps.alerts.fraud``) ask these
questions only, so the engine does not depend on how billing stores events.
``BillingUsage`` answers them from ``billing.UsageEvent`` (accepted events
only: a call a budget refused was never made).

Windows are on ``received_at`` (Bastion's clock), not the caller's
``occurred_at``: a client that reports its own timestamps could otherwise
backdate a burst out of every window the screening looks at.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from django.db import connection
from django.db.models import Count, F, Func, IntegerField, Max, QuerySet, Sum
from django.db.models.functions import Coalesce, Greatest

from apps.billing.models import UsageEvent


@dataclass(frozen=True, slots=True)
class Totals:
    events: int = 0
    tokens: int = 0
    cost: Decimal = Decimal(0)
    tool_calls: int = 0


@dataclass(frozen=True, slots=True)
class RepeatedPrompt:
    prompt_hash: str
    count: int
    minute: datetime


class UsageSource(Protocol):
    def totals(self, *, tenant_id: int, start: datetime, end: datetime) -> Totals: ...

    def by_client(self, *, tenant_id: int, start: datetime, end: datetime) -> dict[int, Totals]: ...

    def long_contexts(
        self, *, tenant_id: int, start: datetime, end: datetime, min_tokens: int
    ) -> dict[int, tuple[int, int]]: ...

    def repeated_prompts(
        self, *, tenant_id: int, start: datetime, end: datetime, min_repeats: int
    ) -> dict[int, RepeatedPrompt]: ...

    def tool_names(self, *, tenant_id: int, start: datetime, end: datetime) -> dict[int, dict[str, int]]: ...


class _Cardinality(Func):
    function = "CARDINALITY"
    output_field = IntegerField()


class BillingUsage:
    """``UsageSource`` over ``billing.UsageEvent``: one aggregate query per question."""

    def _events(self, tenant_id: int, start: datetime, end: datetime) -> QuerySet[UsageEvent]:
        return UsageEvent.objects.for_tenant(tenant_id).filter(
            status=UsageEvent.Status.ACCEPTED, received_at__gte=start, received_at__lt=end
        )

    def totals(self, *, tenant_id: int, start: datetime, end: datetime) -> Totals:
        row = self._events(tenant_id, start, end).aggregate(
            events=Count("id"),
            tokens=Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0),
            cost=Coalesce(Sum("cost"), Decimal(0)),
            tool_calls=Coalesce(Sum(_Cardinality("tool_calls")), 0),
        )
        return Totals(row["events"], int(row["tokens"]), Decimal(row["cost"]), int(row["tool_calls"]))

    def by_client(self, *, tenant_id: int, start: datetime, end: datetime) -> dict[int, Totals]:
        rows = (
            self._events(tenant_id, start, end)
            .filter(client__isnull=False)
            .values("client_id")
            .annotate(
                events=Count("id"),
                tokens=Coalesce(Sum(F("input_tokens") + F("output_tokens")), 0),
                cost=Coalesce(Sum("cost"), Decimal(0)),
            )
        )
        return {r["client_id"]: Totals(r["events"], int(r["tokens"]), Decimal(r["cost"])) for r in rows}

    def long_contexts(
        self, *, tenant_id: int, start: datetime, end: datetime, min_tokens: int
    ) -> dict[int, tuple[int, int]]:
        """Per client: how many calls carried a context of at least ``min_tokens``, and the largest."""
        size = Greatest("context_tokens", "input_tokens")
        rows = (
            self._events(tenant_id, start, end)
            .filter(client__isnull=False)
            .annotate(size=size)
            .filter(size__gte=min_tokens)
            .values("client_id")
            .annotate(events=Count("id"), largest=Max("size"))
        )
        return {r["client_id"]: (r["events"], int(r["largest"])) for r in rows}

    def repeated_prompts(
        self, *, tenant_id: int, start: datetime, end: datetime, min_repeats: int
    ) -> dict[int, RepeatedPrompt]:
        """Per client: the prompt hash sent most often within any 60 seconds, if at least ``min_repeats`` times.

        A sliding minute (a window function from each event on), not clock minutes: a burst paced
        across a minute boundary (19 at :59, 19 at :01) is one storm, not two halves under the limit.
        """
        table = UsageEvent._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT client_id, prompt_hash, first_at, n FROM ("
                " SELECT client_id, prompt_hash, received_at AS first_at, count(*) OVER ("
                "  PARTITION BY client_id, prompt_hash ORDER BY received_at"
                "  RANGE BETWEEN CURRENT ROW AND INTERVAL '59.999999 seconds' FOLLOWING) AS n"
                f" FROM {table} WHERE tenant_id = %s AND status = %s AND received_at >= %s AND received_at < %s"
                " AND client_id IS NOT NULL AND prompt_hash <> ''"
                ") AS w WHERE n >= %s ORDER BY client_id, n DESC, first_at",
                [tenant_id, UsageEvent.Status.ACCEPTED, start, end, min_repeats],
            )
            rows = cursor.fetchall()
        found: dict[int, RepeatedPrompt] = {}
        for client_id, prompt_hash, first_at, n in rows:
            found.setdefault(client_id, RepeatedPrompt(prompt_hash, n, first_at))
        return found

    def tool_names(self, *, tenant_id: int, start: datetime, end: datetime) -> dict[int, dict[str, int]]:
        """Per client: each tool name reported in usage and how many calls named it (one query, unnest in SQL)."""
        table = UsageEvent._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT e.client_id, t.name, count(*) FROM {table} e, unnest(e.tool_calls) AS t(name)"
                " WHERE e.tenant_id = %s AND e.status = %s AND e.received_at >= %s AND e.received_at < %s"
                " AND e.client_id IS NOT NULL GROUP BY 1, 2",
                [tenant_id, UsageEvent.Status.ACCEPTED, start, end],
            )
            rows = cursor.fetchall()
        found: dict[int, dict[str, int]] = defaultdict(dict)
        for client_id, name, n in rows:
            found[client_id][name] = n
        return dict(found)


def default_source() -> UsageSource:
    return BillingUsage()
