"""Webhook intake (verify → store once → enqueue on commit) and processing (claim → handle → done).

Invariant 6: an event that passed its signature check is in the inbox before the
2xx, and its effect is applied in the same transaction that marks it done, so a
duplicate, a redelivery, a crashed worker or a sweep can never apply it twice.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import stripe
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import Actor, record
from apps.billing import conf
from apps.billing.errors import BillingError, TenantMismatchError, WebhookRejectedError
from apps.billing.models import WebhookEvent
from apps.billing.stripe_handlers import HANDLERS

logger = logging.getLogger(__name__)

STRIPE = "stripe"
# A freshly stored row gets this long for its enqueued task before the sweeper takes it too.
INTAKE_GRACE = timedelta(minutes=2)
# Rejected requests are audited at most once per source per window: a flood of forgeries
# must not become a flood of audit rows.
REJECT_AUDIT_WINDOW_SECONDS = 60


@dataclass(frozen=True)
class Intake:
    pk: int | None
    stored: bool  # False for a duplicate delivery


# --- intake ------------------------------------------------------------------------------------


def _verify(*, payload: bytes, signature: str | None) -> dict[str, Any]:
    secrets = conf.stripe_webhook_secrets()
    if not secrets:
        raise WebhookRejectedError("no webhook secret configured")
    if not signature:
        raise WebhookRejectedError("unsigned")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebhookRejectedError("malformed body") from exc
    # The SDK's header check only (HMAC over "t.body", any v1 entry, 300 s tolerance): building
    # a stripe.Event costs ~50x more and is not needed to store the event.
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, signature, secret, tolerance=conf.WEBHOOK_TOLERANCE_SECONDS)
            break
        except stripe.SignatureVerificationError as exc:
            last = str(exc)
    else:
        raise WebhookRejectedError(f"signature: {last}")
    try:
        event = json.loads(text)
    except ValueError as exc:
        raise WebhookRejectedError("malformed JSON") from exc
    if not isinstance(event, dict):
        raise WebhookRejectedError("malformed event")
    event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
    if not (isinstance(event_id, str) and event_id.startswith("evt_") and len(event_id) <= 255):
        raise WebhookRejectedError("malformed event id")
    if not (isinstance(event_type, str) and 0 < len(event_type) <= 100):
        raise WebhookRejectedError("malformed event type")
    if not isinstance(created, int) or isinstance(created, bool):
        raise WebhookRejectedError("malformed event created")
    return event


def _audit_rejection(*, reason: str, source: str) -> None:
    key = f"billing:webhook-reject:{source}"
    if not cache.add(key, 1, REJECT_AUDIT_WINDOW_SECONDS):
        return  # already audited for this source in this window
    record(
        "billing.webhook_rejected",
        actor=Actor.anonymous(source),
        target_type="webhook",
        target_id=STRIPE,
        result="denied",
        metadata={"provider": STRIPE, "reason": reason[:200], "window_seconds": REJECT_AUDIT_WINDOW_SECONDS},
    )


def _enqueue(pk: int) -> None:
    """Send the processing task; a broker outage is logged, the sweeper will find the row."""
    from apps.billing.tasks import process_webhook_event

    try:
        process_webhook_event.delay(pk)
    except Exception:  # noqa: BLE001 — any broker error: the row is stored, the sweep re-enqueues it
        logger.warning("billing: could not enqueue webhook event %s; the sweeper will retry", pk, exc_info=True)


def stripe_webhook_receive(*, payload: bytes, signature: str | None, source: str = "") -> Intake:
    """Verify a Stripe delivery and store it once; the task is enqueued after commit.

    Raises WebhookRejectedError (audited, rate-limited per source) for anything not
    verified and well-formed; nothing is stored then.
    """
    try:
        event = _verify(payload=payload, signature=signature)
    except WebhookRejectedError as exc:
        _audit_rejection(reason=exc.reason, source=source)
        raise
    now = timezone.now()
    with transaction.atomic():
        with connection.cursor() as cursor:
            # ON CONFLICT DO NOTHING: a duplicate (even a concurrent one) inserts nothing and
            # raises nothing; the first delivery's row and task stand.
            cursor.execute(
                f"INSERT INTO {WebhookEvent._meta.db_table} "  # table name from the model, values bound
                "(provider, event_id, event_type, event_created, payload, status, attempts, last_error,"
                " received_at, next_attempt_at) VALUES (%s, %s, %s, %s, %s::jsonb, %s, 0, '', %s, %s)"
                " ON CONFLICT (provider, event_id) DO NOTHING RETURNING id",
                [
                    STRIPE,
                    event["id"],
                    event["type"],
                    event["created"],
                    payload.decode("utf-8"),
                    WebhookEvent.Status.PENDING,
                    now,
                    now + INTAKE_GRACE,
                ],
            )
            row = cursor.fetchone()
        if row is None:
            return Intake(pk=None, stored=False)
        pk = int(row[0])
        transaction.on_commit(lambda: _enqueue(pk))
    return Intake(pk=pk, stored=True)


# --- processing --------------------------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    # 30 s, 1 min, 2 min … capped at 1 h: a Stripe outage or an unknown customer gets time to settle.
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


@dataclass(frozen=True)
class Outcome:
    status: str
    retry_in: float | None = None


def webhook_process(*, event_pk: int) -> Outcome:
    """Claim one inbox row, apply its handler, mark it done in the same transaction.

    A row held by another worker (SKIP LOCKED) or already finished is left alone.
    A handler error rolls back the effect, counts the attempt and schedules the
    next one; after ``BILLING_WEBHOOK_MAX_ATTEMPTS`` the row is dead-lettered.
    """
    with transaction.atomic():
        row = (
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(pk=event_pk, status__in=[WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED])
            .first()
        )
        if row is None:
            return Outcome("skipped")
        now = timezone.now()
        handler = HANDLERS.get(row.event_type) if row.provider == STRIPE else None
        try:
            with transaction.atomic():  # savepoint: a failed handler leaves no partial effect
                tenant_id = handler(row.payload) if handler else None
        except TenantMismatchError as exc:
            row.status, row.last_error, row.processed_at = WebhookEvent.Status.REFUSED, str(exc)[:2000], now
            row.attempts += 1
            row.save(update_fields=["status", "last_error", "processed_at", "attempts"])
            # Audited in the owning tenant's chain (their customer was named for another tenant);
            # outside the handler's savepoint, so the record survives the rolled-back effect.
            record(
                "billing.webhook_refused",
                tenant=exc.owner_id,
                actor=Actor.system("stripe webhook"),
                target=row,
                result="denied",
                metadata={
                    "event_id": row.event_id,
                    "type": row.event_type,
                    "claimed_tenant": exc.claimed,
                    "customer": exc.customer_id,
                    "reason": str(exc)[:300],
                },
            )
            return Outcome(row.status)
        except Exception as exc:  # noqa: BLE001 — any handler failure is retried, then dead-lettered
            row.attempts += 1
            row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
            if row.attempts >= conf.webhook_max_attempts():
                row.status = WebhookEvent.Status.DEAD
                row.save(update_fields=["status", "attempts", "last_error"])
                record(
                    "billing.webhook_dead_lettered",
                    actor=Actor.system("stripe webhook"),
                    target=row,
                    result="failure",
                    metadata={"event_id": row.event_id, "type": row.event_type, "attempts": row.attempts},
                )
                return Outcome(row.status)
            delay = _backoff(row.attempts)
            row.status, row.next_attempt_at = WebhookEvent.Status.FAILED, now + delay
            row.save(update_fields=["status", "attempts", "last_error", "next_attempt_at"])
            return Outcome(row.status, retry_in=delay.total_seconds())
        row.status, row.processed_at, row.tenant_id = WebhookEvent.Status.DONE, now, tenant_id
        row.save(update_fields=["status", "processed_at", "tenant_id"])
        return Outcome(row.status)


def webhooks_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Re-enqueue rows left pending or failed past their next attempt (lost message, killed worker).

    Each row's next attempt is pushed forward as it is taken, so overlapping
    sweeps do not enqueue it twice; a second task would skip it anyway.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(
                status__in=[WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED],
                next_attempt_at__lte=now,
            )
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if rows:
            WebhookEvent.objects.filter(pk__in=rows).update(next_attempt_at=now + INTAKE_GRACE)
            for pk in rows:
                transaction.on_commit(lambda pk=pk: _enqueue(pk))
    return len(rows)


def webhook_replay(*, event: WebhookEvent, by: Any) -> None:
    """Staff: put a dead-lettered (or refused) event back in the queue, attempts reset, audited."""
    if event.status not in (WebhookEvent.Status.DEAD, WebhookEvent.Status.REFUSED):
        raise BillingError("Only dead-lettered or refused events can be replayed.")
    with transaction.atomic():
        changed = WebhookEvent.objects.filter(pk=event.pk, status=event.status).update(
            status=WebhookEvent.Status.PENDING, attempts=0, next_attempt_at=timezone.now() + INTAKE_GRACE
        )
        if not changed:
            raise BillingError("The event changed meanwhile; reload the page.")
        record(
            "billing.webhook_replayed",
            actor=Actor.for_user(by),
            target=event,
            metadata={"event_id": event.event_id, "type": event.event_type, "previous_status": event.status},
        )
        transaction.on_commit(lambda: _enqueue(event.pk))
