"""Webhook inbox, a tenant's Stripe customer, and the mirror of its Stripe subscription."""

from __future__ import annotations

from django.db import models

from apps.tenants.models import TenantOwned


class WebhookEvent(models.Model):
    """One provider event, stored once (unique on provider + event id) before the 2xx is returned.

    Not tenant-owned: the tenant is known only after processing (``tenant_id`` then).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        FAILED = "failed", "Failed, will retry"
        DONE = "done", "Done"
        REFUSED = "refused", "Refused"
        DEAD = "dead", "Dead-lettered"

    provider = models.CharField(max_length=20)
    event_id = models.CharField(max_length=255)
    event_type = models.CharField(max_length=100)
    event_created = models.BigIntegerField()  # the provider's own unix time of the event
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    tenant_id = models.BigIntegerField(null=True, blank=True)
    received_at = models.DateTimeField()
    # When the sweeper may (re-)enqueue the row: a grace after intake, the backoff after a failure.
    next_attempt_at = models.DateTimeField()
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["provider", "event_id"], name="billing_webhook_unique_event")]
        indexes = [models.Index(fields=["status", "next_attempt_at"], name="billing_webhook_due")]

    def __str__(self) -> str:
        return f"{self.provider}:{self.event_id}"


class StripeCustomer(TenantOwned):
    """The tenant's Stripe customer: the one trusted link from a Stripe object to a tenant."""

    customer_id = models.CharField(max_length=255, unique=True)
    delinquent = models.BooleanField(default=False)
    # ``created`` of the last invoice event applied: an older one never overwrites a newer state.
    payment_state_event_created = models.BigIntegerField(default=0)
    last_invoice_id = models.CharField(max_length=255, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="billing_one_customer_per_tenant")]

    def __str__(self) -> str:
        return self.customer_id


class Subscription(TenantOwned):
    """Mirror of a Stripe subscription, updated only by webhook handlers."""

    subscription_id = models.CharField(max_length=255, unique=True)
    customer_id = models.CharField(max_length=255)
    status = models.CharField(max_length=30)
    price_id = models.CharField(max_length=255, blank=True, default="")
    quantity = models.PositiveIntegerField(default=1)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # ``created`` of the newest event applied; older events are skipped (out-of-order delivery).
    last_event_created = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.subscription_id
