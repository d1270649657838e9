"""Raising alerts and fraud cases (de-duplicated while open) and queueing their notifications.

Both queues share one shape: look for the open row with the same dedupe key
(locked); if there is one, count one more occurrence and notify nobody; if not,
insert in a savepoint, where the unique partial index is the last word on a
race (the loser's insert fails, it re-reads the winner's row and counts an
occurrence instead). A new row is audited as a system action and gets one
delivery per destination, sent by a Celery task after commit.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from apps.alerts.models import Alert, AlertRule, Delivery, FraudCase, FraudPolicy, WebhookEndpoint
from apps.audit.services import Actor, record
from apps.tenants.models import Tenant

SYSTEM = Actor.system("alerts")
OPEN_ALERT = (Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED)


@dataclass(frozen=True, slots=True)
class Raised:
    """The open row for the key, and whether this call created it (False: an occurrence was counted)."""

    row: Alert | FraudCase
    created: bool


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _number(value: Decimal | None) -> str | None:
    return None if value is None else format(value.normalize(), "f")


def alert_payload(alert: Alert, tenant: Tenant, *, event: str) -> dict[str, Any]:
    url = reverse("alerts:alert_detail", kwargs={"tenant_slug": tenant.slug, "pk": alert.pk})
    return {
        "type": event,
        "tenant": tenant.slug,
        "alert": {
            "id": alert.pk,
            "title": alert.title,
            "metric": alert.metric,
            "status": alert.status,
            "observed": _number(alert.observed),
            "expected": _number(alert.expected),
            "volume": alert.volume,
            "window_start": _iso(alert.window_start),
            "window_end": _iso(alert.window_end),
            "opened_at": _iso(alert.opened_at),
            "url": _absolute(url),
        },
    }


def case_payload(case: FraudCase, tenant: Tenant, *, event: str) -> dict[str, Any]:
    url = reverse("alerts:case_detail", kwargs={"tenant_slug": tenant.slug, "pk": case.pk})
    return {
        "type": event,
        "tenant": tenant.slug,
        "fraud_case": {
            "id": case.pk,
            "signal": case.signal,
            "summary": case.summary,
            "client_id": case.client_label,
            "status": case.status,
            "evidence": case.evidence,
            "opened_at": _iso(case.opened_at),
            "url": _absolute(url),
        },
    }


def _enqueue(delivery_ids: list[int]) -> None:
    from apps.alerts.tasks import deliver  # a service enqueues its own app's task, lazily and on commit

    for pk in delivery_ids:
        deliver.delay(pk)


def queue_deliveries(
    *,
    tenant: Tenant,
    payload: Mapping[str, Any],
    emails: list[str],
    endpoints: list[WebhookEndpoint],
    alert: Alert | None = None,
    case: FraudCase | None = None,
) -> list[Delivery]:
    """One delivery row per address and per endpoint, sent after the caller's transaction commits."""
    rows = [
        Delivery(tenant=tenant, alert=alert, case=case, channel=Delivery.Channel.EMAIL, destination=address, payload={})
        for address in dict.fromkeys(emails)
    ] + [
        Delivery(
            tenant=tenant,
            alert=alert,
            case=case,
            channel=Delivery.Channel.WEBHOOK,
            endpoint=endpoint,
            destination=endpoint.url_display,  # the full URL may carry the receiver's own secret
            payload={},
        )
        for endpoint in endpoints
    ]
    for row in rows:
        # The event id travels in the body too, so a receiver that logs bodies can match redeliveries.
        row.payload = {"id": str(row.event_id), "created": timezone.now().isoformat(), **payload}
    created = Delivery.objects.bulk_create(rows)
    ids = [row.pk for row in created]
    if ids:
        transaction.on_commit(functools.partial(_enqueue, ids))
    return created


def _endpoints(tenant: Tenant, *, fraud: bool) -> list[WebhookEndpoint]:
    qs = WebhookEndpoint.objects.for_tenant(tenant).filter(enabled=True)
    return list(qs.filter(send_fraud=True) if fraud else qs.filter(send_alerts=True))


def _count_occurrence(model: type[Alert] | type[FraudCase], row_id: int, values: Mapping[str, Any]) -> None:
    model.objects.filter(pk=row_id).update(occurrences=F("occurrences") + 1, last_seen_at=timezone.now(), **values)


@transaction.atomic
def alert_raise(
    *, rule: AlertRule, observed: Decimal, expected: Decimal | None, volume: int, start: datetime, end: datetime
) -> Raised:
    """Open an alert for ``rule`` unless one is open already (then count an occurrence and notify nobody)."""
    tenant = rule.tenant
    key = f"rule:{rule.pk}"
    update = {"observed": observed, "expected": expected, "volume": volume, "window_end": end}
    existing = Alert.objects.for_tenant(tenant).filter(dedupe_key=key, status__in=OPEN_ALERT).first()
    if existing is not None:
        _count_occurrence(Alert, existing.pk, update)
        return Raised(existing, created=False)
    alert = Alert(
        tenant=tenant,
        rule=rule,
        metric=rule.metric,
        title=f"{rule.name}: {rule.get_metric_display().lower()} is {_number(observed)}",
        dedupe_key=key,
        observed=observed,
        expected=expected,
        volume=volume,
        window_start=start,
        window_end=end,
    )
    try:
        with transaction.atomic():
            alert.save()
    except IntegrityError:
        # Another evaluator opened it between our look and our insert: theirs stands.
        winner = Alert.objects.for_tenant(tenant).get(dedupe_key=key, status__in=OPEN_ALERT)
        _count_occurrence(Alert, winner.pk, update)
        return Raised(winner, created=False)
    alert.refresh_from_db(fields=["opened_at", "last_seen_at"])
    record(
        "alert.open",
        tenant=tenant,
        actor=SYSTEM,
        target=alert,
        metadata={"rule": rule.pk, "metric": rule.metric, "observed": _number(observed), "expected": _number(expected)},
    )
    queue_deliveries(
        tenant=tenant,
        payload=alert_payload(alert, tenant, event="alert.opened"),
        emails=list(rule.email_recipients),
        endpoints=_endpoints(tenant, fraud=False),
        alert=alert,
    )
    return Raised(alert, created=True)


@transaction.atomic
def case_raise(*, policy: FraudPolicy, signal: str, client: Any, summary: str, evidence: dict[str, Any]) -> Raised:
    """Open a fraud case for (``signal``, ``client``) unless one is open (then count an occurrence)."""
    tenant = policy.tenant
    key = f"{signal}:{client.pk}"
    existing = FraudCase.objects.for_tenant(tenant).filter(dedupe_key=key, status=FraudCase.Status.OPEN).first()
    if existing is not None:
        _count_occurrence(FraudCase, existing.pk, {"evidence": evidence})
        return Raised(existing, created=False)
    case = FraudCase(
        tenant=tenant,
        client=client,
        client_label=f"{client.name} ({client.client_id})"[:120],
        signal=signal,
        dedupe_key=key,
        summary=summary[:300],
        evidence=evidence,
    )
    try:
        with transaction.atomic():
            case.save()
    except IntegrityError:
        winner = FraudCase.objects.for_tenant(tenant).get(dedupe_key=key, status=FraudCase.Status.OPEN)
        _count_occurrence(FraudCase, winner.pk, {"evidence": evidence})
        return Raised(winner, created=False)
    case.refresh_from_db(fields=["opened_at", "last_seen_at"])
    record(
        "fraud_case.open",
        tenant=tenant,
        actor=SYSTEM,
        target=case,
        metadata={"signal": signal, "client": client.client_id},
    )
    queue_deliveries(
        tenant=tenant,
        payload=case_payload(case, tenant, event="fraud_case.opened"),
        emails=list(policy.email_recipients),
        endpoints=_endpoints(tenant, fraud=True),
        case=case,
    )
    return Raised(case, created=True)
