"""Celery tasks of the runtime API face."""

from __future__ import annotations

from celery import shared_task

from apps.api import meter


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def flush_token_use() -> int:
    """Move the token-use counts from Redis to the keys app's hourly rows (scheduled in config/celery.py).

    Safe to run twice at once or again after a crash (``meter.drain``): each claimed batch is written once.
    """
    from apps.keys import services as keys_services  # the face's one writer of token use

    return meter.drain(lambda batch_id, rows: keys_services.token_use_record(rows=rows, batch_id=batch_id))
