"""Enqueue a budget alert on commit: the one place metering and budgets reach for a task."""

from __future__ import annotations

from django.db import transaction


def budget_alert_enqueue(*, budget_id: int, period: str, kind: str) -> None:
    """Ask a worker to raise ``kind`` ("soft"/"hard") of the budget for ``period`` once the caller commits."""
    from apps.billing.tasks import budget_alert  # lazy: a service enqueues its own app's task on commit

    transaction.on_commit(lambda: budget_alert.delay(budget_id, period, kind))
