"""Reads for the billing pages."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.billing.models import WebhookEvent


def webhook_dead_letters() -> QuerySet[WebhookEvent]:
    """Dead-lettered and refused events, newest first (the platform page)."""
    return WebhookEvent.objects.filter(status__in=[WebhookEvent.Status.DEAD, WebhookEvent.Status.REFUSED]).order_by(
        "-received_at"
    )


def webhook_get(*, pk: int) -> WebhookEvent | None:
    return WebhookEvent.objects.filter(pk=pk).first()
