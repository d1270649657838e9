"""Celery adapters for the runbook and retention (thin: each calls one service)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.runbook import drill, retention, services


# Idempotent: the runbook is unique per (tenant, quarter) and the insert skips an existing one, so
# an overlap, a redelivery (acks_late) or a run on every day of the quarter opens nothing twice.
@shared_task(name="apps.runbook.tasks.open_quarter_runbooks", acks_late=True, soft_time_limit=600, time_limit=900)
def open_quarter_runbooks() -> int:
    """Open this quarter's runbook for each active tenant that has none; returns how many were opened."""
    return services.runbooks_open_quarter()


# No acks_late: a drill killed half-way must not start again by itself (its row stays "running"
# until the time limit, then the next request marks it failed and drops its scratch database).
@shared_task(name="apps.runbook.tasks.run_restore_drill", soft_time_limit=3600, time_limit=3900)
def run_restore_drill(drill_id: int) -> str | None:
    """Run a queued restore drill; returns its status (None when another run had claimed it)."""
    result = drill.drill_run(int(drill_id))
    return None if result is None else result.status


# Batches are their own transactions and each tenant is independent, so a retried or overlapping
# run only finds less to delete.
@shared_task(name="apps.runbook.tasks.purge_retention", acks_late=True, soft_time_limit=3000, time_limit=3600)
def purge_retention() -> dict[str, Any]:
    """Apply every tenant's retention settings; returns the per-tenant summaries."""
    return retention.purge_all()
