"""Webhook intake (verify → store once → enqueue on commit) and processing (claim → handle → done).

Invariant 6: an event that passed its signature check is in the inbox before the
2xx, and its effect is applied in the same transaction that marks it done, so a
duplicate, a redelivery, a crashed worker or a sweep can never apply it twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from django.core.cache import cache
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.services import Actor, record
from apps.billing import conf
from apps.billing.models import StripeCustomer, Subscription, WebhookEvent
from apps.tenants.models import Tenant

logger = logging.getLogger(__name__)

STRIPE = "stripe"
# A freshly stored row gets this long for its enqueued task before the sweeper takes it too.
INTAKE_GRACE = timedelta(minutes=2)
# Rejected requests are audited at most once per source per window: a flood of forgeries
# must not become a flood of audit rows.
REJECT_AUDIT_WINDOW_SECONDS = 60


class WebhookRejectedError(Exception):
    """The request is not a verified, well-formed event: answer 400, store nothing."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BillingError(Exception):
    """A handler could not apply the event yet (retried with backoff)."""


class TenantMismatchError(Exception):
    """The event names a tenant that does not own the Stripe customer: refused, audited, never retried."""

    def __init__(self, message: str, *, owner_id: int | None = None, claimed: str = "", customer_id: str = "") -> None:
        super().__init__(message)
        self.owner_id, self.claimed, self.customer_id = owner_id, claimed, customer_id


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


# --- handlers: each returns the tenant id it applied to; idempotent and order-safe -------------


def _customer_id(obj: dict[str, Any]) -> str | None:
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return customer if isinstance(customer, str) and customer else None


def _claimed_tenant(obj: dict[str, Any]) -> str | None:
    """The tenant the object names (set by us when creating it): client_reference_id or metadata."""
    claimed = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("bastion_tenant")
    return str(claimed) if claimed else None


def _tenant_for(obj: dict[str, Any], event: dict[str, Any]) -> StripeCustomer:
    """The tenant from the customer mapping; a conflicting claim in the object is refused."""
    customer_id = _customer_id(obj)
    if customer_id is None:
        raise BillingError("event object names no customer")
    mapping = StripeCustomer.objects.select_for_update().filter(customer_id=customer_id).first()
    if mapping is None:
        # Possibly the checkout event that creates the mapping has not arrived yet: retry later.
        raise BillingError(f"unknown customer {customer_id}")
    claimed = _claimed_tenant(obj)
    if claimed is not None and claimed != str(mapping.tenant_id):
        _refuse(event=event, claimed=claimed, owner_id=mapping.tenant_id, customer_id=customer_id)
    return mapping


def _refuse(*, event: dict[str, Any], claimed: str, owner_id: int | None, customer_id: str) -> None:
    raise TenantMismatchError(
        f"event {event.get('id')} names tenant {claimed}; customer {customer_id} belongs to another tenant",
        owner_id=owner_id,
        claimed=claimed,
        customer_id=customer_id,
    )


def _checkout_completed(event: dict[str, Any]) -> int:
    obj = event["data"]["object"]
    customer_id = _customer_id(obj)
    claimed = obj.get("client_reference_id")
    if customer_id is None or not claimed:
        raise BillingError("checkout session without customer or client_reference_id")
    tenant = Tenant.objects.filter(pk=int(claimed) if str(claimed).isdigit() else None).first()
    if tenant is None:
        raise TenantMismatchError(f"checkout session names unknown tenant {claimed}")
    existing = StripeCustomer.objects.select_for_update().filter(customer_id=customer_id).first()
    if existing is not None and existing.tenant_id != tenant.pk:
        _refuse(event=event, claimed=str(claimed), owner_id=existing.tenant_id, customer_id=customer_id)
    if existing is None:
        if StripeCustomer.objects.filter(tenant=tenant).exists():
            raise TenantMismatchError(f"tenant {tenant.pk} already has another Stripe customer")
        StripeCustomer.objects.create(tenant=tenant, customer_id=customer_id)
        record(
            "billing.customer_linked",
            tenant=tenant,
            actor=Actor.system("stripe webhook"),
            target_type="stripe_customer",
            target_id=customer_id,
            metadata={"event_id": event["id"], "checkout_session": obj.get("id")},
        )
    return tenant.pk


def _period_end(obj: dict[str, Any]) -> datetime | None:
    # Current API: the period lives on the items; older versions had it on the subscription.
    end = obj.get("current_period_end")
    items = (obj.get("items") or {}).get("data") or []
    if end is None and items:
        end = items[0].get("current_period_end")
    return datetime.fromtimestamp(end, tz=UTC) if isinstance(end, int) else None


def _subscription_changed(event: dict[str, Any]) -> int:
    obj = event["data"]["object"]
    mapping = _tenant_for(obj, event)
    created = int(event["created"])
    items = (obj.get("items") or {}).get("data") or []
    first = items[0] if items else {}
    status = "canceled" if event["type"] == "customer.subscription.deleted" else str(obj.get("status") or "")
    values = {
        "customer_id": mapping.customer_id,
        "status": status,
        "price_id": str((first.get("price") or {}).get("id") or ""),
        "quantity": int(first.get("quantity") or 1),
        "current_period_end": _period_end(obj),
        "cancel_at_period_end": bool(obj.get("cancel_at_period_end")),
        "last_event_created": created,
    }
    sub = Subscription.objects.select_for_update().filter(subscription_id=obj["id"]).first()
    if sub is None:
        sub = Subscription.objects.create(tenant_id=mapping.tenant_id, subscription_id=obj["id"], **values)
    elif sub.tenant_id != mapping.tenant_id:
        _refuse(event=event, claimed=str(mapping.tenant_id), owner_id=sub.tenant_id, customer_id=mapping.customer_id)
    elif (
        created < sub.last_event_created
        # Stripe stamps events to the second: "created" and its first "updated" often share one.
        # A created event is by definition the oldest, and canceled is final in Stripe.
        or event["type"] == "customer.subscription.created"
        or sub.status == "canceled"
    ):
        return mapping.tenant_id  # not newer than what the mirror shows: no overwrite
    else:
        for field, value in values.items():
            setattr(sub, field, value)
        sub.save()
    record(
        "billing.subscription_synced",
        tenant=mapping.tenant_id,
        actor=Actor.system("stripe webhook"),
        target=sub,
        metadata={"event_id": event["id"], "type": event["type"], "status": status},
    )
    return mapping.tenant_id


def _invoice(event: dict[str, Any]) -> int:
    obj = event["data"]["object"]
    mapping = _tenant_for(obj, event)
    created = int(event["created"])
    # Newer wins; within the same second "paid" wins (a paid invoice cannot fail afterwards).
    newer = created > mapping.payment_state_event_created
    if newer or (created == mapping.payment_state_event_created and event["type"] == "invoice.paid"):
        mapping.delinquent = event["type"] == "invoice.payment_failed"
        mapping.payment_state_event_created = created
        mapping.last_invoice_id = str(obj.get("id") or "")
        mapping.save(update_fields=["delinquent", "payment_state_event_created", "last_invoice_id"])
    record(
        "billing.invoice_paid" if event["type"] == "invoice.paid" else "billing.payment_failed",
        tenant=mapping.tenant_id,
        actor=Actor.system("stripe webhook"),
        target_type="invoice",
        target_id=obj.get("id"),
        result="success" if event["type"] == "invoice.paid" else "failure",
        metadata={"event_id": event["id"], "amount_due": obj.get("amount_due"), "currency": obj.get("currency")},
    )
    return mapping.tenant_id


HANDLERS: dict[str, Callable[[dict[str, Any]], int | None]] = {
    "checkout.session.completed": _checkout_completed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "invoice.paid": _invoice,
    "invoice.payment_failed": _invoice,
}
