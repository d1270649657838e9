"""Celery adapters for tenant work (thin: take ids, call one function)."""

from __future__ import annotations

from celery import shared_task

from apps.core.tasking import EMAIL_RETRY_POLICY
from apps.tenants import emails


# Only transient delivery failures are retried (see EMAIL_RETRY_POLICY).
@shared_task(**EMAIL_RETRY_POLICY, soft_time_limit=30, time_limit=60)
def send_invitation_email(membership_id: int) -> bool:
    """E-mail the invitation for ``membership_id``; returns False if it is no longer an open invitation."""
    return emails.send_invitation(membership_id=membership_id)
