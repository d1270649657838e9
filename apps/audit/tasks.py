"""Celery adapters for the audit log (thin: each calls one service)."""

from __future__ import annotations

from celery import shared_task

from apps.audit import services
from apps.audit.services import Actor


# The name is the dotted path config/celery.py's beat schedule refers to.
# Sealing is idempotent (an unchanged head is not sealed twice), so a redelivered
# message after a worker crash (acks_late) does no harm.
@shared_task(name="apps.audit.tasks.seal_audit_chains", acks_late=True, soft_time_limit=120, time_limit=180)
def seal_audit_chains() -> int:
    """Seal every chain whose head moved; returns how many seals were written."""
    return len(services.seal_chains())


@shared_task(name="apps.audit.tasks.record_heartbeat", acks_late=True)
def record_heartbeat(note: str = "") -> int:
    """Append one ``system.heartbeat`` event to the platform audit chain; returns its id.

    Used by the test suite's real-worker check and by operators after a deploy
    (``record_heartbeat.delay("deploy 2025-01-01")``) to see the whole path
    web → broker → worker → database work.
    """
    return services.record("system.heartbeat", actor=Actor.system("worker"), metadata={"note": note[:200]})
