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


# --- provider credentials: rotation reminders (#13) ------------------------------------------------


# Safe to run twice at once or to retry: each reminder is a unique row claimed before it is sent
# (apps/keys/credentials/reminders.py); a redelivered message finds the rows already there.
@shared_task(name="apps.keys.tasks.send_rotation_reminders", acks_late=True, soft_time_limit=300, time_limit=360)
def send_rotation_reminders() -> dict[str, int]:
    """Plan today's rotation reminders (credentials, signing keys, SSO certificates) and send them."""
    from apps.keys.credentials import adapters, reminders

    return reminders.run(extra=adapters.other_items(None))


@shared_task(name="apps.keys.tasks.deliver_rotation_reminders", acks_late=True, soft_time_limit=300, time_limit=360)
def deliver_rotation_reminders() -> int:
    """Send reminders whose delivery died mid-way (their lease ran out); plans nothing new."""
    from apps.keys.credentials import reminders

    return reminders.deliver()
