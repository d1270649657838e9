"""Webhook inbox, Stripe customer and subscription mirror; usage events, rollups, budgets and reservations."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
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


# --- metering, budgets and reservations ------------------------------------------------------------
# Money is Decimal with 6 places (prices per 1,000 tokens have 6); Redis counts it in micro-units.
MONEY = {"max_digits": 18, "decimal_places": 6}


class UsageEvent(TenantOwned):
    """One reported model call, stored once per (tenant, idempotency key) and priced at the catalog's prices.

    ``status`` is ``accepted`` (counted, billed) or ``denied`` (kept for the record, not counted: a
    budget refused it); ``budget_ids`` are the budgets it was charged against (reconciliation sums them).
    """

    class Status(models.TextChoices):
        ACCEPTED = "accepted", "Accepted"
        DENIED = "denied", "Denied by a budget"

    # The reporting API client (the token's), and the member the call was made for, if named.
    client = models.ForeignKey("keys.ApiClient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    member = models.ForeignKey("tenants.Membership", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.ForeignKey("catalog.AIModel", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_name = models.CharField(max_length=140)  # "provider/model_name", kept if the model row goes
    input_tokens = models.BigIntegerField()
    output_tokens = models.BigIntegerField()
    context_tokens = models.BigIntegerField(default=0)
    tool_calls = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    cost = models.DecimalField(**MONEY)
    currency = models.CharField(max_length=3)
    prompt_hash = models.CharField(max_length=128, blank=True, default="")
    idempotency_key = models.CharField(max_length=255)
    occurred_at = models.DateTimeField()  # the caller's timestamp of the call
    received_at = models.DateTimeField()  # ours; its month is the budget period the event counts in
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACCEPTED)
    denied_reason = models.CharField(max_length=300, blank=True, default="")
    budget_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    reservation = models.ForeignKey("Reservation", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    stripe_reported_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="usage_unique_idempotency_key"),
            models.CheckConstraint(
                condition=models.Q(input_tokens__gte=0, output_tokens__gte=0, context_tokens__gte=0, cost__gte=0),
                name="usage_not_negative",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "occurred_at"], name="usage_tenant_time"),
            models.Index(fields=["tenant", "client", "occurred_at"], name="usage_tenant_client_time"),
            models.Index(fields=["received_at"], name="usage_received"),
            models.Index(
                fields=["received_at"],
                name="usage_stripe_pending",
                condition=models.Q(stripe_reported_at__isnull=True, status="accepted"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} {self.idempotency_key}"


class _Rollup(TenantOwned):
    """Sums of accepted usage per (period start, model, client); rewritten whole by the rollup task."""

    model_name = models.CharField(max_length=140)
    client = models.ForeignKey("keys.ApiClient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    client_key = models.CharField(max_length=64, blank=True, default="")  # the client's public id, "" for none
    client_name = models.CharField(max_length=200, blank=True, default="")
    events = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    context_tokens = models.BigIntegerField(default=0)
    tool_calls = models.BigIntegerField(default=0)
    cost = models.DecimalField(**MONEY, default=0)
    currency = models.CharField(max_length=3)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class UsageHourly(_Rollup):
    """Accepted usage per hour (UTC), model and client."""

    hour = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "hour", "model_name", "client_key"], name="usage_hourly_unique_group"
            )
        ]


class UsageDaily(_Rollup):
    """Accepted usage per day (UTC), model and client: what the usage page and its CSV read."""

    day = models.DateField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "day", "model_name", "client_key"], name="usage_daily_unique_group"
            )
        ]


class Budget(TenantOwned):
    """A monthly spending limit for the whole tenant, one role or one API client, with a soft alert share."""

    class Scope(models.TextChoices):
        TENANT = "tenant", "Whole tenant"
        ROLE = "role", "Role"
        CLIENT = "client", "API client"

    class Source(models.TextChoices):
        TENANT = "tenant", "Set by the tenant"
        PLAN = "plan", "From the plan"  # managed by apps.billing.plan_budgets; tenants cannot change it

    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=10, choices=Scope.choices)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.TENANT)
    # The plan whose limits this budget carries (source "plan" only).
    plan = models.ForeignKey("billing.Plan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    role = models.ForeignKey("access.Role", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    client = models.ForeignKey("keys.ApiClient", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    amount = models.DecimalField(max_digits=14, decimal_places=2)  # the hard limit per calendar month (UTC)
    currency = models.CharField(max_length=3)
    soft_percent = models.PositiveSmallIntegerField(default=80)
    # Cost-per-minute throttle (a token bucket on money); null = none.
    per_minute = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["scope", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="budget_unique_name"),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(scope="tenant", source="tenant"), name="budget_one_tenant_budget"
            ),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(source="plan"), name="budget_one_plan_budget"
            ),
            models.CheckConstraint(
                condition=models.Q(source="tenant") | models.Q(source="plan", scope="tenant"),
                name="budget_plan_is_tenant_wide",
            ),
            models.UniqueConstraint(
                fields=["tenant", "role"], condition=models.Q(scope="role"), name="budget_one_per_role"
            ),
            models.UniqueConstraint(
                fields=["tenant", "client"], condition=models.Q(scope="client"), name="budget_one_per_client"
            ),
            models.CheckConstraint(
                condition=(models.Q(scope="tenant", role__isnull=True, client__isnull=True))
                | models.Q(scope="role", role__isnull=False, client__isnull=True)
                | models.Q(scope="client", role__isnull=True, client__isnull=False),
                name="budget_scope_target",
            ),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="budget_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(soft_percent__gte=1, soft_percent__lte=100), name="budget_soft_percent_range"
            ),
            models.CheckConstraint(
                condition=models.Q(per_minute__isnull=True) | models.Q(per_minute__gt=0),
                name="budget_per_minute_positive",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class BudgetAlert(TenantOwned):
    """A budget crossed its soft share (or its hard limit) in a period: written once, then notified once."""

    class Kind(models.TextChoices):
        SOFT = "soft", "Soft share reached"
        HARD = "hard", "Hard limit reached"

    budget = models.ForeignKey(Budget, on_delete=models.CASCADE, related_name="alerts")
    period = models.DateField()  # the first day of the month (UTC)
    kind = models.CharField(max_length=4, choices=Kind.choices)
    spent = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["budget", "period", "kind"], name="budget_alert_once_per_period")
        ]
        indexes = [models.Index(fields=["tenant", "period"], name="budget_alert_tenant_period")]


class Reservation(TenantOwned):
    """Money set aside before a high-risk call; settled with the actual cost, released, or expired."""

    class Status(models.TextChoices):
        HELD = "held", "Held"
        SETTLED = "settled", "Settled"
        RELEASED = "released", "Released"
        EXPIRED = "expired", "Expired"

    uid = models.UUIDField(unique=True)  # the id the API hands out
    client = models.ForeignKey("keys.ApiClient", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    member = models.ForeignKey("tenants.Membership", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model_name = models.CharField(max_length=140, blank=True, default="")
    tool_names = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    amount = models.DecimalField(**MONEY)
    actual = models.DecimalField(**MONEY, null=True, blank=True)
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.HELD)
    budget_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    period = models.DateField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="reservation_amount_positive"),
            models.CheckConstraint(
                condition=models.Q(actual__isnull=True) | models.Q(actual__gte=0, actual__lte=models.F("amount")),
                name="reservation_actual_within_amount",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "expires_at"], name="reservation_tenant_status"),
            models.Index(fields=["expires_at"], name="reservation_held_due", condition=models.Q(status="held")),
        ]

    def __str__(self) -> str:
        return str(self.uid)
