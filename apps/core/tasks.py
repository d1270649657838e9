"""Diagnostic tasks: prove that a worker consumes from the broker and reaches the database."""

from __future__ import annotations

from celery import shared_task

from apps.audit.services import Actor, record


@shared_task(name="apps.core.tasks.ping")
def ping() -> str:
    """Touches nothing; answers "pong" (useful with a result backend or in the worker log)."""
    return "pong"


@shared_task(name="apps.core.tasks.record_heartbeat", acks_late=True)
def record_heartbeat(note: str = "") -> int:
    """Append one ``system.heartbeat`` event to the platform audit chain; returns its id.

    Used by the test suite's real-worker check and by operators after a deploy
    (``record_heartbeat.delay("deploy 2025-01-01")``) to see the whole path
    web → broker → worker → database work.
    """
    return record("system.heartbeat", actor=Actor.system("worker"), metadata={"note": note[:200]})
