"""Thin Celery adapters for break-glass: the expiry sweep (beat, every minute) and notices."""

from __future__ import annotations

from celery import shared_task

from apps.breakglass.incidents import receipts_purge
from apps.breakglass.notices import notice_send
from apps.breakglass.services import elevations_expire
from apps.core.tasking import EMAIL_RETRY_POLICY


# config/celery.py runs this every minute. Access is already refused at expires_at by every
# decision; the sweep tidies up, audits and e-mails. Two runs at once claim disjoint rows.
@shared_task(name="apps.breakglass.tasks.expire_elevations", acks_late=True, soft_time_limit=50, time_limit=55)
def expire_elevations() -> dict[str, int]:
    """Mark ended elevations expired and stale requests lapsed, forget old webhook replay keys; returns the counts."""
    counts = elevations_expire()
    counts["receipts_purged"] = receipts_purge()
    return counts


# Only transient delivery failures are retried; a redelivery may send a notice twice.
@shared_task(name="apps.breakglass.tasks.notify_elevation", **EMAIL_RETRY_POLICY, soft_time_limit=60, time_limit=90)
def notify_elevation(elevation_id: int, event: str) -> int:
    """E-mail about one elevation event; returns how many messages were sent."""
    return notice_send(elevation_id=elevation_id, event=event)
