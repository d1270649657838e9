"""Evaluating a tenant's alert rules: measure the last hour, keep the baseline, raise.

Each rule is evaluated in its own transaction holding its row lock, taken with
``SKIP LOCKED``: a second evaluation of the same rule running at the same time
(two beat ticks, a retried task, a manual run) skips it instead of waiting and
judging the same window again; the unique partial index behind
``alert_raise`` catches anything that still slips through.

The window is the last 60 minutes, so a rule "per hour" means the same at
every five-minute tick. The EWMA baseline is folded from whole clock hours
that end before the window starts, so the minutes being judged are never part
of the baseline they are judged against. A rule that was not evaluated for a
while catches up at most ``CATCH_UP_HOURS`` hours (a new rule on a tenant with
history learns from the last day at once).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from apps.alerts import engine
from apps.alerts.metrics import measure
from apps.alerts.models import AlertRule
from apps.alerts.services.raising import Raised, alert_raise
from apps.alerts.usage import UsageSource, default_source

WINDOW = timedelta(hours=1)
CATCH_UP_HOURS = 24
BASELINE_PLACES = Decimal("0.000001")


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _fold_hours(rule: AlertRule, *, until: datetime, usage: UsageSource) -> None:
    """Fold every whole hour in [baseline_through, until) into the rule's EWMA (at most CATCH_UP_HOURS)."""
    start = rule.baseline_through or until - timedelta(hours=CATCH_UP_HOURS)
    start = max(start, until - timedelta(hours=CATCH_UP_HOURS))
    hour = hour_floor(start)
    while hour + timedelta(hours=1) <= until:
        m = measure(rule.metric, tenant_id=rule.tenant_id, start=hour, end=hour + timedelta(hours=1), usage=usage)
        rule.baseline = engine.fit(engine.ewma(rule.baseline, m.value, rule.alpha)).quantize(BASELINE_PLACES)
        rule.baseline_hours += 1
        hour += timedelta(hours=1)
    rule.baseline_through = max(hour, rule.baseline_through or hour)


def rule_evaluate(*, rule_id: int, now: datetime | None = None, usage: UsageSource | None = None) -> Raised | None:
    """Evaluate one enabled rule; returns what it raised (or counted), None if quiet or taken by another run."""
    now = now or timezone.now()
    usage = usage or default_source()
    with transaction.atomic():
        rule = (
            AlertRule.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant")
            .filter(pk=rule_id, enabled=True)
            .first()
        )
        if rule is None:
            return None
        start = now - WINDOW
        if rule.mode == AlertRule.Mode.BASELINE:
            _fold_hours(rule, until=hour_floor(start), usage=usage)
        m = measure(rule.metric, tenant_id=rule.tenant_id, start=start, end=now, usage=usage)
        if rule.mode == AlertRule.Mode.THRESHOLD:
            verdict = engine.against_threshold(m, threshold=rule.threshold, min_volume=rule.min_volume)
        else:
            verdict = engine.against_baseline(
                m, baseline=rule.baseline, hours=rule.baseline_hours, factor=rule.factor, min_volume=rule.min_volume
            )
        rule.last_evaluated_at, rule.last_value = now, engine.fit(m.value)
        rule.save(update_fields=["baseline", "baseline_hours", "baseline_through", "last_evaluated_at", "last_value"])
        if not verdict.fire:
            return None
        expected = engine.fit(verdict.expected) if verdict.expected is not None else None
        return alert_raise(
            rule=rule, observed=engine.fit(m.value), expected=expected, volume=m.volume, start=start, end=now
        )


def tenant_rule_ids(*, tenant_id: int) -> list[int]:
    return list(AlertRule.objects.for_tenant(tenant_id).filter(enabled=True).values_list("pk", flat=True))


def tenants_with_rules() -> list[int]:
    return list(AlertRule.objects.filter(enabled=True).values_list("tenant_id", flat=True).distinct())
