"""Measurements for alert rules: one tenant, one metric, one window [start, end).

Where each number comes from:

- spend and tokens per hour: accepted usage events (``apps.alerts.usage``);
  the volume is the number of events;
- tool error rate: tool calls the guardrails refused — the runtime API's
  ``tool-calls/check`` audits every refusal as ``guardrail.tool_call`` or
  ``guardrail.tool_output`` with result ``denied`` (allowed checks are not
  recorded anywhere) — as a percentage of those refusals plus the tool calls
  reported in usage; the volume is that sum;
- denied checks per hour: rows of the access decision log (``DeniedDecision``);
- sign-in failures per hour: ``auth.sign_in`` audit events with result
  ``failure`` or ``denied`` on the tenant's chain.

For the two counts the volume is the count itself, so the minimum volume is a
floor below which nothing is worth a page.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from apps.access.models import DeniedDecision
from apps.alerts.engine import Measurement
from apps.alerts.models import Metric
from apps.alerts.usage import UsageSource
from apps.audit.models import AuditEvent

TOOL_REFUSAL_ACTIONS = ("guardrail.tool_call", "guardrail.tool_output")
SIGN_IN_ACTION = "auth.sign_in"
FAILED_RESULTS = (AuditEvent.Result.FAILURE, AuditEvent.Result.DENIED)


def _audit_count(
    tenant_id: int, start: datetime, end: datetime, actions: tuple[str, ...], results: tuple[str, ...]
) -> int:
    return (
        AuditEvent.objects.for_tenant(tenant_id)
        .filter(action__in=actions, result__in=results, occurred_at__gte=start, occurred_at__lt=end)
        .count()
    )


def measure(metric: str, *, tenant_id: int, start: datetime, end: datetime, usage: UsageSource) -> Measurement:
    """The value of ``metric`` for the tenant over the window, with its volume."""
    if metric in (Metric.SPEND_PER_HOUR, Metric.TOKENS_PER_HOUR):
        totals = usage.totals(tenant_id=tenant_id, start=start, end=end)
        value = totals.cost if metric == Metric.SPEND_PER_HOUR else Decimal(totals.tokens)
        return Measurement(value, totals.events)
    if metric == Metric.TOOL_ERROR_RATE:
        refused = _audit_count(tenant_id, start, end, TOOL_REFUSAL_ACTIONS, (AuditEvent.Result.DENIED,))
        calls = usage.totals(tenant_id=tenant_id, start=start, end=end).tool_calls
        total = refused + calls
        rate = (Decimal(100) * refused / total) if total else Decimal(0)
        return Measurement(rate.quantize(Decimal("0.01")), total)
    if metric == Metric.DENIED_CHECKS:
        count = DeniedDecision.objects.for_tenant(tenant_id).filter(occurred_at__gte=start, occurred_at__lt=end).count()
        return Measurement(Decimal(count), count)
    if metric == Metric.SIGN_IN_FAILURES:
        count = _audit_count(tenant_id, start, end, (SIGN_IN_ACTION,), FAILED_RESULTS)
        return Measurement(Decimal(count), count)
    raise ValueError(f"unknown metric {metric!r}")
