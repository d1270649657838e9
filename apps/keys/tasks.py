"""Celery adapters for the keys app (thin: each calls one service)."""

from __future__ import annotations

from celery import shared_task

from apps.keys import services


# Idempotent (each step checks the keys' state under a row lock), so a redelivered message
# after a worker crash (acks_late) or an overlapping manual run does no harm.
@shared_task(name="apps.keys.tasks.rotate_signing_keys", acks_late=True, soft_time_limit=60, time_limit=90)
def rotate_signing_keys() -> list[str]:
    """One step of the signing-key schedule; returns what it did (see ``services.signing_keys_rotate``)."""
    return services.signing_keys_rotate()
