"""Celery adapters of the alerts app: evaluate (beat, every 5 minutes), deliver, sweep.

Tasks take ids and call one service each. ``evaluate_all`` fans out one
``evaluate_tenant`` per tenant, so a slow tenant delays nobody else and two
workers share the load; evaluating the same tenant twice at once is harmless
(rule rows and the fraud policy are locked with SKIP LOCKED, alerts and cases
are de-duplicated by a unique partial index).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from apps.alerts.selectors import active_tenant_ids
from apps.alerts.services import delivery, evaluation, fraud

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def evaluate_all() -> int:
    """Queue one evaluation per active tenant; returns how many were queued."""
    ids = active_tenant_ids()
    for tenant_id in ids:
        evaluate_tenant.delay(tenant_id)
    return len(ids)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def evaluate_tenant(tenant_id: int) -> int:
    """Evaluate the tenant's alert rules and screen its usage; returns how many alerts and cases were opened."""
    opened = 0
    failed: list[BaseException] = []
    for rule_id in evaluation.tenant_rule_ids(tenant_id=tenant_id):
        try:
            raised = evaluation.rule_evaluate(rule_id=rule_id)
        except Exception as exc:  # one broken rule must not silence the tenant's other rules and screening
            logger.exception("alert rule %s could not be evaluated", rule_id)
            failed.append(exc)
            continue
        opened += bool(raised and raised.created)
    opened += sum(r.created for r in fraud.tenant_screen(tenant_id=tenant_id))
    if failed:
        raise failed[0]  # the run still shows as failed in the worker's log
    return opened


@shared_task(bind=True, acks_late=True, max_retries=None, soft_time_limit=60, time_limit=90)
def deliver(self: Any, delivery_id: int) -> bool:
    """Make the next attempt of one delivery; on failure, retry after the backoff the service chose."""
    outcome = delivery.delivery_attempt(delivery_id=delivery_id)
    if outcome.retry_in is not None and not self.request.is_eager:
        # The service counts attempts and decides when to give up; Celery only waits. Run inline
        # (eagerly) there is nobody to wait: the row stays ``retrying`` and the sweep picks it up.
        raise self.retry(countdown=outcome.retry_in)
    return outcome.ok


@shared_task(acks_late=True, soft_time_limit=60, time_limit=90)
def sweep_deliveries() -> int:
    """Re-queue deliveries whose message was lost (broker down, worker killed): claims make repeats harmless."""
    ids = delivery.due_delivery_ids()
    for pk in ids:
        deliver.delay(pk)
    return len(ids)
