"""Hourly and daily usage rollups (recomputable upserts) and reporting usage to Stripe as meter events.

Rollups: each run recomputes, from the events themselves, every (tenant, hour)
that an event received since the last run falls in, and upserts the sums
(``INSERT … SELECT … GROUP BY … ON CONFLICT DO UPDATE``); then the days of
those hours, from the hourly rows. Running it twice, or over any range again
(``usage_rollup_recompute``), gives the same rows: nothing is added to a
stored sum, every sum is rewritten whole. Only accepted events count.

Stripe: accepted events of tenants with a Stripe customer are sent to
``POST /v1/billing/meter_events`` (event name ``STRIPE_METER_EVENT_NAME``,
value = input + output tokens) with ``identifier`` = ``bastion-usage-<our
event id>``, so Stripe counts a resent event once (it deduplicates by
identifier), and with the same value as the request's idempotency key. A row
is marked reported only after Stripe accepted it; rows are claimed with ``FOR
UPDATE SKIP LOCKED`` so two workers never send the same batch at once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.conf import settings
from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from apps.billing import stripe_api
from apps.billing.models import StripeCustomer, UsageDaily, UsageEvent, UsageHourly

logger = logging.getLogger(__name__)

# A run looks back this far before the newest rollup it wrote (a transaction that committed late).
ROLLUP_OVERLAP = timedelta(minutes=10)
STRIPE_MAX_AGE = timedelta(days=35)  # Stripe refuses meter events older than this

_EVENTS = UsageEvent._meta.db_table
_HOURLY = UsageHourly._meta.db_table
_DAILY = UsageDaily._meta.db_table
_SUMS = (
    "count(*), sum(e.input_tokens), sum(e.output_tokens), sum(e.context_tokens), "
    "sum(cardinality(e.tool_calls)), sum(e.cost), max(e.currency)"
)
_UPDATE = (
    "events = EXCLUDED.events, input_tokens = EXCLUDED.input_tokens, output_tokens = EXCLUDED.output_tokens, "
    "context_tokens = EXCLUDED.context_tokens, tool_calls = EXCLUDED.tool_calls, cost = EXCLUDED.cost, "
    "currency = EXCLUDED.currency, client_id = EXCLUDED.client_id, client_name = EXCLUDED.client_name, "
    "updated_at = EXCLUDED.updated_at"
)
_HOURLY_SQL = f"""
WITH touched AS ({{touched}})
INSERT INTO {_HOURLY} (tenant_id, hour, model_name, client_key, client_id, client_name, events, input_tokens,
                       output_tokens, context_tokens, tool_calls, cost, currency, updated_at)
SELECT e.tenant_id, date_trunc('hour', e.occurred_at, 'UTC'), e.model_name, coalesce(c.client_id, ''),
       max(e.client_id), coalesce(max(c.name), ''), {_SUMS}, now()
  FROM {_EVENTS} e
  JOIN touched t ON t.tenant_id = e.tenant_id AND date_trunc('hour', e.occurred_at, 'UTC') = t.hour
  LEFT JOIN keys_apiclient c ON c.id = e.client_id
 WHERE e.status = 'accepted'
 GROUP BY 1, 2, 3, 4
ON CONFLICT (tenant_id, hour, model_name, client_key) DO UPDATE SET {_UPDATE}
"""  # our tables; every value is a parameter
_DAILY_SQL = f"""
WITH days AS (SELECT DISTINCT tenant_id, (hour AT TIME ZONE 'UTC')::date AS day FROM ({{touched}}) AS t)
INSERT INTO {_DAILY} (tenant_id, day, model_name, client_key, client_id, client_name, events, input_tokens,
                      output_tokens, context_tokens, tool_calls, cost, currency, updated_at)
SELECT h.tenant_id, (h.hour AT TIME ZONE 'UTC')::date, h.model_name, h.client_key, max(h.client_id),
       max(h.client_name), sum(h.events), sum(h.input_tokens), sum(h.output_tokens), sum(h.context_tokens),
       sum(h.tool_calls), sum(h.cost), max(h.currency), now()
  FROM {_HOURLY} h
  JOIN days d ON d.tenant_id = h.tenant_id AND (h.hour AT TIME ZONE 'UTC')::date = d.day
 GROUP BY 1, 2, 3, 4
ON CONFLICT (tenant_id, day, model_name, client_key) DO UPDATE SET {_UPDATE}
"""
_TOUCHED_SINCE = (
    f"SELECT DISTINCT tenant_id, date_trunc('hour', occurred_at, 'UTC') AS hour FROM {_EVENTS} WHERE received_at >= %s"
)
_TOUCHED_RANGE = (
    f"SELECT DISTINCT tenant_id, date_trunc('hour', occurred_at, 'UTC') AS hour FROM {_EVENTS} "
    "WHERE occurred_at >= %s AND occurred_at < %s AND (%s::bigint IS NULL OR tenant_id = %s::bigint)"
)


def _rollup(touched: str, params: list[Any]) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(_HOURLY_SQL.format(touched=touched), params)
        hours = cursor.rowcount
        cursor.execute(_DAILY_SQL.format(touched=touched), params)
    return hours


def usage_rollup(*, now: datetime | None = None) -> int:
    """Recompute the hours (and their days) that events received since the last run fall in; returns rows written."""
    last = UsageHourly.objects.aggregate(last=Max("updated_at"))["last"]
    since = (last - ROLLUP_OVERLAP) if last else datetime(2000, 1, 1, tzinfo=UTC)
    return _rollup(_TOUCHED_SINCE, [since])


def usage_rollup_recompute(*, start: datetime, end: datetime, tenant_id: int | None = None) -> int:
    """Recompute every hour with events in [start, end) (of one tenant, or all); the same rows as the beat run."""
    return _rollup(_TOUCHED_RANGE, [start, end, tenant_id, tenant_id])


# --- Stripe meter events -------------------------------------------------------------------------


def meter_identifier(event_id: int) -> str:
    return f"bastion-usage-{event_id}"


def usage_report_to_stripe(*, batch: int = 500, now: datetime | None = None) -> int:
    """Send unreported accepted usage of Stripe customers as meter events; returns how many Stripe accepted.

    Stops at the first refusal or network error (the rest waits for the next
    run; resending what Stripe already has is harmless, the identifier is ours).
    """
    api = stripe_api.client()  # None without STRIPE_SECRET_KEY; STRIPE_API_BASE points it elsewhere
    event_name = getattr(settings, "STRIPE_METER_EVENT_NAME", "")
    if api is None or not event_name:
        return 0
    now = now or timezone.now()
    customers = dict(StripeCustomer.objects.values_list("tenant_id", "customer_id"))
    if not customers:
        return 0
    sent = 0
    with transaction.atomic():
        rows = list(
            UsageEvent.objects.select_for_update(skip_locked=True)
            .filter(
                status=UsageEvent.Status.ACCEPTED,
                stripe_reported_at__isnull=True,
                tenant_id__in=list(customers),
                occurred_at__gt=now - STRIPE_MAX_AGE,
            )
            .order_by("received_at")
            .only("pk", "tenant_id", "input_tokens", "output_tokens", "occurred_at")[:batch]
        )
        done: list[int] = []
        try:
            for row in rows:
                identifier = meter_identifier(row.pk)
                api.v1.billing.meter_events.create(
                    {
                        "event_name": event_name,
                        "identifier": identifier,
                        "timestamp": int(row.occurred_at.timestamp()),
                        "payload": {
                            "stripe_customer_id": customers[row.tenant_id],
                            "value": str(row.input_tokens + row.output_tokens),
                        },
                    },
                    {"idempotency_key": identifier},
                )
                done.append(row.pk)
        except stripe.StripeError as error:
            logger.warning("stripe meter events: stopped after %s: %s", len(done), type(error).__name__)
        if done:
            UsageEvent.objects.filter(pk__in=done).update(stripe_reported_at=now)
            sent = len(done)
    return sent
