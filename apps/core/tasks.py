"""Diagnostic task: prove that a worker consumes from the broker.

The heartbeat that also reaches the database and the audit chain lives with
the audit app (its ``tasks.record_heartbeat``): ``core`` imports no app.
"""

from __future__ import annotations

from celery import shared_task


@shared_task(name="apps.core.tasks.ping")
def ping() -> str:
    """Touches nothing; answers "pong" (useful with a result backend or in the worker log)."""
    return "pong"
