"""Celery options every task of a kind shares, written once.

``EMAIL_RETRY_POLICY``: tasks that send e-mail retry only transient delivery
failures (the SMTP server or the network), with exponential backoff from 30 s
up to 30 min, jittered, six times (about an hour in all). A bad template or a
missing row is a bug and must fail loudly instead of retrying for an hour.
``acks_late`` redelivers a message whose worker died mid-task; a notice may
then go out twice, which is better than never. Each task adds its own time
limits: ``@shared_task(**EMAIL_RETRY_POLICY, soft_time_limit=30, time_limit=60)``.
"""

from __future__ import annotations

from smtplib import SMTPException
from types import MappingProxyType
from typing import Any

EMAIL_RETRY_POLICY: MappingProxyType[str, Any] = MappingProxyType(
    {
        "acks_late": True,
        "autoretry_for": (SMTPException, ConnectionError, TimeoutError),
        "retry_backoff": 30,
        "retry_backoff_max": 30 * 60,
        "retry_jitter": True,
        "max_retries": 6,
    }
)
