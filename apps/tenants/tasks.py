"""Celery adapters for tenant work (thin: take ids, call one function)."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from apps.tenants import emails


# Only transient delivery failures are retried; a bad template or a missing row
# is a bug and must fail loudly instead of retrying for an hour.
@shared_task(
    acks_late=True,
    autoretry_for=(SMTPException, ConnectionError, TimeoutError),
    retry_backoff=30,
    retry_backoff_max=30 * 60,
    retry_jitter=True,
    max_retries=6,
    soft_time_limit=30,
    time_limit=60,
)
def send_invitation_email(membership_id: int) -> bool:
    """E-mail the invitation for ``membership_id``; returns False if it is no longer an open invitation."""
    return emails.send_invitation(membership_id=membership_id)
