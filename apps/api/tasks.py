"""Celery tasks of the runtime API face."""

from __future__ import annotations

import logging

from celery import shared_task

from apps.api import meter

logger = logging.getLogger(__name__)


@shared_task(acks_late=True, soft_time_limit=120, time_limit=180)
def flush_token_use() -> int:
    """Move the token-use counts from Redis to the keys app's hourly rows (scheduled in config/celery.py)."""
    from apps.keys import services as keys_services  # the face's one writer of token use

    record = getattr(keys_services, "token_use_record", None)
    if record is None:
        logger.warning("apps.keys.services.token_use_record is missing; token-use counts stay in Redis")
        return 0
    return meter.drain(lambda rows: record(rows=rows))
