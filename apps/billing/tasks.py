"""Thin Celery adapters for billing: one task per webhook event, and the beat sweeper."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.billing.services import webhook_process, webhooks_sweep


# Ids only; the claim (SKIP LOCKED on a pending/failed row) makes a second run a no-op, and acks_late
# redelivers a message whose worker died (its transaction rolled back, the row still pending).
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
    """Process one inbox row; a failure is retried after the row's backoff."""
    outcome = webhook_process(event_pk=event_pk)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


# config/celery.py runs this every minute; see there.
@shared_task(name="apps.billing.tasks.sweep_webhook_events", acks_late=True, soft_time_limit=50, time_limit=55)
def sweep_webhook_events() -> int:
    """Re-enqueue inbox rows stuck unprocessed; returns how many."""
    return webhooks_sweep()
