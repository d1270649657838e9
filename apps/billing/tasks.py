"""Thin Celery adapters for billing: one task per webhook event, and the beat sweeper."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.billing.services import DRAIN_SECONDS, Outcome, webhooks_drain, webhooks_process_batch, webhooks_sweep


# Ids only; the claim (SKIP LOCKED on a pending/failed row) makes a second run a no-op, and acks_late
# redelivers a message whose worker died (its transaction rolled back, the row still pending).
# While other stored rows are waiting (a backlog after a worker outage), one run also applies them for
# up to services.DRAIN_SECONDS, batched; the messages of those rows then cost one query each.
@shared_task(
    name="apps.billing.tasks.process_webhook_event",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=60,
    time_limit=90,
    max_retries=None,  # the row's attempt count decides when to dead-letter, not Celery's
)
def process_webhook_event(self: Any, event_pk: int) -> str:
    """Process one inbox row (and others waiting); a failure is retried after the row's backoff."""
    outcome, others = webhooks_drain(event_pk=event_pk)
    _retry_later(others)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


def _retry_later(outcomes: dict[int, Outcome]) -> None:
    """Schedule each failed row's next attempt after its backoff (the sweeper would find it too)."""
    for event_pk, outcome in outcomes.items():
        if outcome.retry_in is not None:
            process_webhook_event.apply_async((event_pk,), countdown=outcome.retry_in)


# Several stored events in one message (the intake's publisher under load, the sweeper): claimed in
# one query and applied under one commit, each event in its own savepoint with its own done mark, so
# exactly-once still holds per event; a worker lost mid-batch rolls the batch back, and the message's
# redelivery or the sweeper runs it again. Other pending rows are drained afterwards as above.
@shared_task(
    name="apps.billing.tasks.process_webhook_events",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=300,
    time_limit=330,
)
def process_webhook_events(event_pks: list[int]) -> int:
    """Process inbox rows as one batch; returns how many were claimed."""
    outcomes = webhooks_process_batch(event_pks=[int(pk) for pk in event_pks], drain_seconds=DRAIN_SECONDS)
    _retry_later(outcomes)
    return len(outcomes)


# config/celery.py runs this every minute; see there.
@shared_task(name="apps.billing.tasks.sweep_webhook_events", acks_late=True, soft_time_limit=50, time_limit=55)
def sweep_webhook_events() -> int:
    """Re-enqueue inbox rows stuck unprocessed; returns how many."""
    return webhooks_sweep()


# Dunning (apps.billing.dunning). The notice: once per failed invoice, the case row locked while sending.
@shared_task(
    name="apps.billing.tasks.send_dunning_notice",
    bind=True,
    acks_late=True,
    soft_time_limit=60,
    time_limit=90,
    max_retries=5,
)
def send_dunning_notice(self: Any, case_id: int) -> int:
    """E-mail the tenant's billing admins about one failed invoice; a mail error retries with backoff."""
    from apps.billing.dunning import notice_send

    try:
        return notice_send(case_id=case_id)
    except OSError as exc:  # SMTP unreachable: the case stays unmarked, so a retry sends it
        raise self.retry(exc=exc, countdown=60 * 2**self.request.retries) from exc


# config/celery.py runs this daily; see there.
@shared_task(name="apps.billing.tasks.enforce_dunning", acks_late=True, soft_time_limit=600, time_limit=660)
def enforce_dunning() -> int:
    """Suspend tenants whose failed invoice is past its grace; returns how many."""
    from apps.billing.dunning import dunning_enforce

    return dunning_enforce()


# --- metering and budgets (apps.billing.metering, budgets, reservations, usage_rollups) ---------


@shared_task(
    name="apps.billing.tasks.budget_alert",
    bind=True,
    acks_late=True,
    soft_time_limit=60,
    time_limit=90,
    max_retries=5,
)
def budget_alert(self: Any, budget_id: int, period: str, kind: str) -> bool:
    """Raise a budget's alert for the period once (row + e-mail + audit); a mail error retries with backoff."""
    from apps.billing.budgets import alert_raise

    try:
        return alert_raise(budget_id=budget_id, period=period, kind=kind) is not None
    except OSError as exc:  # SMTP unreachable: the alert stays unnotified, so a retry sends it
        raise self.retry(exc=exc, countdown=30 * 2**self.request.retries) from exc


# config/celery.py runs the four below; see there for when and why.
@shared_task(name="apps.billing.tasks.reconcile_budgets", acks_late=True, soft_time_limit=50, time_limit=55)
def reconcile_budgets() -> int:
    """Repair budget counters in Redis that drifted from the database; returns how many changed."""
    from apps.billing.budgets import budgets_reconcile

    return budgets_reconcile().repaired


@shared_task(name="apps.billing.tasks.expire_reservations", acks_late=True, soft_time_limit=50, time_limit=55)
def expire_reservations() -> int:
    """Mark held reservations past their time as expired; returns how many."""
    from apps.billing.reservations import reservations_expire

    return reservations_expire()


@shared_task(name="apps.billing.tasks.rollup_usage", acks_late=True, soft_time_limit=240, time_limit=270)
def rollup_usage() -> int:
    """Recompute the hourly and daily usage rollups touched since the last run."""
    from apps.billing.usage_rollups import usage_rollup

    return usage_rollup()


@shared_task(name="apps.billing.tasks.report_usage_to_stripe", acks_late=True, soft_time_limit=50, time_limit=55)
def report_usage_to_stripe() -> int:
    """Send unreported usage to Stripe as meter events (no-op without a Stripe key)."""
    from apps.billing.usage_rollups import usage_report_to_stripe

    return usage_report_to_stripe()
