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
        # Stored and verified, but no handler applies (an Adyen event code or Stripe type we do not act on).
        IGNORED = "ignored", "Ignored (no handler)"

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


# --- plans, invoices, payment method, dunning (#12 item 1) ---------------------------------------


class Plan(models.Model):
    """A plan platform staff offer: its Stripe price, what it includes and its monthly spend limits.

    Not tenant-owned: one catalogue for the installation. ``active`` plans are offered in "Change plan".
    """

    name = models.CharField(max_length=80, unique=True)
    stripe_price_id = models.CharField(max_length=255, unique=True)
    included_tokens = models.PositiveBigIntegerField(default=0)
    currency = models.CharField(max_length=3, default="eur")
    seat_price = models.DecimalField(max_digits=10, decimal_places=2, default=0)
    # Monthly spend (money, in ``currency``): the soft limit warns, the hard limit refuses more usage.
    soft_limit = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    hard_limit = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(soft_limit__isnull=True)
                | models.Q(hard_limit__isnull=True)
                | models.Q(soft_limit__lte=models.F("hard_limit")),
                name="billing_plan_soft_below_hard",
            ),
            models.CheckConstraint(condition=models.Q(seat_price__gte=0), name="billing_plan_seat_price_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Invoice(TenantOwned):
    """Mirror of a Stripe invoice, written only by webhook handlers (finalized, paid, payment_failed)."""

    invoice_id = models.CharField(max_length=255, unique=True)
    customer_id = models.CharField(max_length=255)
    subscription_id = models.CharField(max_length=255, blank=True, default="")
    number = models.CharField(max_length=100, blank=True, default="")
    status = models.CharField(max_length=20, blank=True, default="")
    amount_due = models.BigIntegerField(default=0)  # minor units (cents), as Stripe sends them
    amount_paid = models.BigIntegerField(default=0)
    currency = models.CharField(max_length=3, blank=True, default="")
    hosted_invoice_url = models.URLField(max_length=2000, blank=True, default="")
    invoice_pdf = models.URLField(max_length=2000, blank=True, default="")
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    issued_at = models.DateTimeField()  # the invoice's own ``created``: the list's order
    payment_failed = models.BooleanField(default=False)
    # ``created`` of the newest event applied; older events never overwrite (paid and void are final).
    last_event_created = models.BigIntegerField(default=0)

    class Meta:
        indexes = [models.Index(fields=["tenant", "-issued_at", "-id"], name="billing_invoice_list")]

    def __str__(self) -> str:
        return self.number or self.invoice_id


class PaymentProfile(TenantOwned):
    """The customer's billing e-mail and default payment method summary (never a full card number)."""

    customer_id = models.CharField(max_length=255)
    email = models.EmailField(blank=True, default="")
    payment_method_id = models.CharField(max_length=255, blank=True, default="")
    brand = models.CharField(max_length=30, blank=True, default="")  # "visa", or the method's type ("sepa_debit")
    last4 = models.CharField(max_length=4, blank=True, default="")
    exp_month = models.PositiveSmallIntegerField(null=True, blank=True)
    exp_year = models.PositiveSmallIntegerField(null=True, blank=True)
    last_event_created = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="billing_one_payment_profile_per_tenant")]

    def __str__(self) -> str:
        return f"{self.brand} {self.last4}".strip() or self.customer_id


class DunningCase(TenantOwned):
    """One failed invoice of a tenant: banner and e-mail now, suspension after the grace, closed when paid."""

    invoice_id = models.CharField(max_length=255)
    opened_at = models.DateTimeField()
    grace_until = models.DateTimeField()
    notified_at = models.DateTimeField(null=True, blank=True)  # the e-mail to billing admins went out
    suspended_at = models.DateTimeField(null=True, blank=True)  # this case suspended the tenant
    resolved_at = models.DateTimeField(null=True, blank=True)
    grace_extensions = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "invoice_id"], name="billing_one_dunning_case_per_invoice")
        ]
        indexes = [models.Index(fields=["tenant", "resolved_at"], name="billing_dunning_open")]

    def __str__(self) -> str:
        return f"dunning {self.invoice_id}"


class ProviderPayment(TenantOwned):
    """A payment a provider reported (Adyen AUTHORISATION), one row per provider payment reference."""

    provider = models.CharField(max_length=20)
    psp_reference = models.CharField(max_length=255)
    merchant_reference = models.CharField(max_length=255)
    amount_minor = models.BigIntegerField()  # in the currency's minor unit, as the provider sends it
    currency = models.CharField(max_length=3)
    authorised = models.BooleanField()
    # The provider's own time of the event applied: an older event never overwrites a newer one.
    event_created = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "psp_reference"], name="billing_payment_unique_reference")
        ]

    def __str__(self) -> str:
        return f"{self.provider}:{self.psp_reference}"
