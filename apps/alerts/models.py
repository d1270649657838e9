"""Anomaly rules and alerts, fraud cases, webhook endpoints and the delivery log.

Two queues fed by one detection engine (``apps.alerts.engine``): ``Alert`` rows
for tenant-wide anomalies against a rule, ``FraudCase`` rows for one API
client's suspicious usage. Both are de-duplicated while open by a unique
partial index on ``(tenant, dedupe_key)``, so two evaluators racing on the same
window insert one row and the loser's insert does nothing.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from apps.keys.models import ApiClient
from apps.tenants.models import Membership, TenantOwned


class Metric(models.TextChoices):
    SPEND_PER_HOUR = "spend_per_hour", "Spend per hour"
    TOKENS_PER_HOUR = "tokens_per_hour", "Tokens per hour"
    TOOL_ERROR_RATE = "tool_error_rate", "Tool error rate (%)"
    DENIED_CHECKS = "denied_checks_per_hour", "Denied checks per hour"
    SIGN_IN_FAILURES = "sign_in_failures_per_hour", "Sign-in failures per hour"


class AlertRule(TenantOwned):
    """One tenant's rule: a metric over the last hour against an EWMA baseline or a fixed threshold."""

    class Mode(models.TextChoices):
        BASELINE = "baseline", "Rolling baseline (EWMA)"
        THRESHOLD = "threshold", "Fixed threshold"

    name = models.CharField(max_length=80)
    metric = models.CharField(max_length=32, choices=Metric.choices)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.BASELINE)
    threshold = models.DecimalField(max_digits=14, decimal_places=4, null=True, blank=True)
    factor = models.DecimalField(max_digits=6, decimal_places=2, default=3)
    alpha = models.DecimalField(max_digits=4, decimal_places=3, default="0.300")
    min_volume = models.PositiveIntegerField(default=20)
    email_recipients = ArrayField(models.EmailField(), default=list, blank=True)
    enabled = models.BooleanField(default=True)
    # EWMA state: the smoothed hourly value, how many whole hours it has seen, and the last hour folded in.
    baseline = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    baseline_hours = models.PositiveIntegerField(default=0)
    baseline_through = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    last_value = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="alerts_rule_unique_name"),
            models.CheckConstraint(
                condition=Q(threshold__isnull=True) | Q(threshold__gt=0), name="alerts_rule_thr_pos"
            ),
            models.CheckConstraint(condition=Q(factor__gt=1), name="alerts_rule_factor_gt_1"),
            models.CheckConstraint(condition=Q(alpha__gt=0, alpha__lte=1), name="alerts_rule_alpha_range"),
            models.CheckConstraint(
                condition=~Q(mode="threshold") | Q(threshold__isnull=False), name="alerts_rule_threshold_mode"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Alert(TenantOwned):
    """An anomaly raised by a rule; at most one open (or acknowledged) per rule."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        ACKNOWLEDGED = "acknowledged", "Acknowledged"
        RESOLVED = "resolved", "Resolved"

    rule = models.ForeignKey(AlertRule, null=True, on_delete=models.SET_NULL, related_name="alerts")
    metric = models.CharField(max_length=32, choices=Metric.choices)
    title = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    dedupe_key = models.CharField(max_length=120)
    observed = models.DecimalField(max_digits=20, decimal_places=6)
    expected = models.DecimalField(max_digits=20, decimal_places=6, null=True, blank=True)
    volume = models.BigIntegerField(default=0)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    occurrences = models.PositiveIntegerField(default=1)
    opened_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(db_default=Now())
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            # De-duplication while open: a second raise for the same key finds this row instead.
            models.UniqueConstraint(
                fields=["tenant", "dedupe_key"],
                condition=Q(status__in=["open", "acknowledged"]),
                name="alerts_alert_one_open",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-opened_at"], name="alerts_alert_status"),
            models.Index(fields=["tenant", "-opened_at", "-id"], name="alerts_alert_time"),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def is_open(self) -> bool:
        return self.status != self.Status.RESOLVED


class Signal(models.TextChoices):
    LONG_CONTEXT = "long_context", "Unusually long contexts"
    RETRY_STORM = "retry_storm", "Retry storm (same prompt again and again)"
    UNLISTED_TOOL = "unlisted_tool", "Tool calls outside the client's allowlist"
    COST_SPIKE = "cost_spike", "Cost spike against the client's baseline"


class FraudPolicy(TenantOwned):
    """A tenant's fraud-screening thresholds (one row per tenant, created with defaults on first use)."""

    enabled = models.BooleanField(default=True)
    long_context_tokens = models.PositiveIntegerField(default=100_000)
    long_context_min_events = models.PositiveIntegerField(default=3)
    retry_storm_repeats = models.PositiveIntegerField(default=20)
    unlisted_tool_min_calls = models.PositiveIntegerField(default=1)
    cost_spike_factor = models.DecimalField(max_digits=6, decimal_places=2, default=5)
    cost_min_events = models.PositiveIntegerField(default=20)
    email_recipients = ArrayField(models.EmailField(), default=list, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    # The clients' cost baselines have folded every whole hour before this one (None: never yet).
    costs_through = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="alerts_fraudpolicy_one"),
            models.CheckConstraint(condition=Q(long_context_tokens__gt=0), name="alerts_fp_context_pos"),
            models.CheckConstraint(condition=Q(retry_storm_repeats__gt=1), name="alerts_fp_repeats_gt_1"),
            models.CheckConstraint(condition=Q(unlisted_tool_min_calls__gte=1), name="alerts_fp_tool_calls_pos"),
            models.CheckConstraint(condition=Q(cost_spike_factor__gt=1), name="alerts_fp_factor_gt_1"),
        ]


class ClientBaseline(TenantOwned):
    """EWMA of one API client's hourly cost, for the cost-spike signal."""

    client = models.OneToOneField(ApiClient, on_delete=models.CASCADE, related_name="+")
    cost = models.DecimalField(max_digits=20, decimal_places=6, default=0)
    hours = models.PositiveIntegerField(default=0)
    through = models.DateTimeField(null=True, blank=True)


class FraudCase(TenantOwned):
    """A suspicion about one API client, waiting for review; at most one open per (signal, client)."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CONFIRMED = "confirmed", "Confirmed"
        DISMISSED = "dismissed", "Dismissed"

    client = models.ForeignKey(ApiClient, null=True, on_delete=models.SET_NULL, related_name="+")
    client_label = models.CharField(max_length=120, blank=True)
    signal = models.CharField(max_length=20, choices=Signal.choices)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    dedupe_key = models.CharField(max_length=120)
    summary = models.CharField(max_length=300)
    evidence = models.JSONField(default=dict)
    occurrences = models.PositiveIntegerField(default=1)
    opened_at = models.DateTimeField(db_default=Now())
    last_seen_at = models.DateTimeField(db_default=Now())
    assignee = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    decision_note = models.CharField(max_length=500, blank=True)
    client_disabled = models.BooleanField(default=False)

    class Meta:
        ordering = ["-opened_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "dedupe_key"], condition=Q(status="open"), name="alerts_fraudcase_one_open"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "status", "-opened_at"], name="alerts_case_status"),
        ]

    def __str__(self) -> str:
        return self.summary


class WebhookEndpoint(TenantOwned):
    """A tenant-configured URL that receives signed alert and fraud-case notifications."""

    name = models.CharField(max_length=80)
    url = models.URLField(max_length=500)
    enabled = models.BooleanField(default=True)
    send_alerts = models.BooleanField(default=True)
    send_fraud = models.BooleanField(default=False)
    # Fernet-encrypted (apps.alerts.crypto); the plain secret is shown once, on create and rotate.
    secret_encrypted = models.TextField()
    secret_hint = models.CharField(max_length=8)
    # After a rotation the old secret also signs (a second v1) until this moment, so receivers can switch over.
    previous_secret_encrypted = models.TextField(blank=True)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "pk"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"], name="alerts_endpoint_unique_name")]

    def __str__(self) -> str:
        return self.name

    @property
    def url_display(self) -> str:
        """Scheme, host and port only: receivers (Slack, Teams…) often put their own secret in the path."""
        return display_url(self.url)


def display_url(url: str) -> str:
    parts = urlsplit(url)
    shown = f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"
    return f"{shown}/…" if (parts.path not in ("", "/") or parts.query) else f"{shown}/"


class Delivery(TenantOwned):
    """One notification of one alert or case to one destination (an e-mail address or an endpoint)."""

    class Channel(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        RETRYING = "retrying", "Retrying"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    alert = models.ForeignKey(Alert, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    case = models.ForeignKey(FraudCase, null=True, blank=True, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=8, choices=Channel.choices)
    endpoint = models.ForeignKey(WebhookEndpoint, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    destination = models.CharField(max_length=500)
    payload = models.JSONField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    # A manual "send again" grants a fresh round: failed once ``attempts`` reaches this (0: the setting).
    give_up_after = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(db_default=Now())
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(db_default=Now())
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-created_at", "-id"], name="alerts_delivery_time"),
            # The sweeper's cross-tenant scan: only rows still waiting are indexed.
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "sending", "retrying"]),
                name="alerts_delivery_due",
            ),
        ]


class DeliveryAttempt(TenantOwned):
    """One try of a delivery: when, what came back, how long it took (the visible delivery log)."""

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    attempted_at = models.DateTimeField(db_default=Now())
    ok = models.BooleanField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=300, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["number"]
        constraints = [models.UniqueConstraint(fields=["delivery", "number"], name="alerts_attempt_unique")]
        indexes = [models.Index(fields=["tenant", "-attempted_at"], name="alerts_attempt_time")]
