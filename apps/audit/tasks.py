"""Celery adapters for the audit log (thin: each calls one service)."""

from __future__ import annotations

from celery import shared_task

from apps.audit import services


# The name is the dotted path config/celery.py's beat schedule refers to.
# Sealing is idempotent (an unchanged head is not sealed twice), so a redelivered
# message after a worker crash (acks_late) does no harm.
@shared_task(name="apps.audit.tasks.seal_audit_chains", acks_late=True, soft_time_limit=120, time_limit=180)
def seal_audit_chains() -> int:
    """Seal every chain whose head moved; returns how many seals were written."""
    return len(services.seal_chains())
