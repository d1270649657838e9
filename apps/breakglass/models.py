"""Break-glass policies, elevation requests and their approvals."""

from __future__ import annotations

from datetime import datetime

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Now

from apps.access.escalation import AccessError
from apps.access.models import Role, RoleBinding
from apps.tenants.models import Membership, TenantOwned

DEFAULT_PENDING_MINUTES = 60


def refuse_role_delete(collector: object, field: models.Field, sub_objs: models.QuerySet, using: str) -> None:
    """``on_delete`` of the roles policies and elevations name: deleting such a role is refused with a reason.

    Like PROTECT, but raising ``AccessError``, which the roles pages already show as a form error
    (PROTECT's ProtectedError would be a 500 there: access knows nothing of break-glass).
    """
    model = field.model
    if model is Policy:
        names = ", ".join(sorted(f"“{p.name}”" for p in sub_objs))
        raise AccessError(f"Break-glass policy {names} grants this role: give the policy another role first.")
    ids = ", ".join(f"#{e.pk}" for e in list(sub_objs)[:5])
    raise AccessError(f"Break-glass elevations {ids} granted this role; it stays for their history.")


class Policy(TenantOwned):
    """Who may ask for which role, for how long, and who must approve."""

    name = models.CharField(max_length=80)
    role = models.ForeignKey(Role, on_delete=refuse_role_delete, related_name="+")
    # Role keys (built-in or custom) and IdP groups; both empty means anyone holding the permission.
    requester_roles = ArrayField(models.SlugField(max_length=40), default=list, blank=True)
    requester_groups = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    approver_roles = ArrayField(models.SlugField(max_length=40), default=list, blank=True)
    approver_groups = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    approvals_required = models.PositiveSmallIntegerField(default=1)
    max_duration_minutes = models.PositiveIntegerField()
    pending_minutes = models.PositiveIntegerField(default=DEFAULT_PENDING_MINUTES)
    incident_required = models.BooleanField(default=False)
    paused = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="bg_policy_unique_name"),
            models.CheckConstraint(
                condition=models.Q(approvals_required__gte=1, approvals_required__lte=3), name="bg_policy_approvals_1_3"
            ),
            models.CheckConstraint(condition=models.Q(max_duration_minutes__gte=1), name="bg_policy_duration_positive"),
            models.CheckConstraint(condition=models.Q(pending_minutes__gte=1), name="bg_policy_pending_positive"),
        ]

    def __str__(self) -> str:
        return self.name


class Elevation(TenantOwned):
    """One request for a policy's role, from pending through active to its end."""

    class Status(models.TextChoices):
        PENDING = "pending", "Waiting for approval"
        ACTIVE = "active", "Active"
        DENIED = "denied", "Denied"
        LAPSED = "lapsed", "Not decided in time"
        ENDED = "ended", "Ended early"
        EXPIRED = "expired", "Expired"
        CANCELLED = "cancelled", "Cancelled"  # its incident was closed, or the requester left the tenant

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="elevations")
    # SET_NULL, not CASCADE: removing the requester from the tenant ends the elevation
    # (``apps.breakglass.signals``) and keeps its history; ``requester_email`` names them afterwards.
    requester = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requester_email = models.EmailField(max_length=254, blank=True)
    role = models.ForeignKey(Role, on_delete=refuse_role_delete, related_name="+")
    duration_minutes = models.PositiveIntegerField()
    justification = models.TextField()
    incident_ref = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    approvals_required = models.PositiveSmallIntegerField()
    requested_at = models.DateTimeField()
    pending_until = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ended_by = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    binding = models.ForeignKey(RoleBinding, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "status", "-requested_at"], name="bg_elevation_tenant_status"),
            # The beat task's two sweeps look only at open rows.
            models.Index(
                fields=["tenant", "expires_at"], condition=models.Q(status="active"), name="bg_elevation_active_end"
            ),
            models.Index(
                fields=["tenant", "pending_until"],
                condition=models.Q(status="pending"),
                name="bg_elevation_pending_end",
            ),
            # Closing an incident finds the open rows that name it.
            models.Index(
                fields=["tenant", "incident_ref"],
                condition=models.Q(status__in=["pending", "active"]),
                name="bg_elevation_open_incident",
            ),
            # The review page's person filter.
            models.Index(fields=["tenant", "requester", "-requested_at"], name="bg_elevation_requester"),
        ]

    def __str__(self) -> str:
        return f"elevation #{self.pk}"

    @property
    def requester_address(self) -> str:
        """Who asked: their e-mail, also after they left the tenant."""
        if self.requester_email:
            return self.requester_email
        return self.requester.user.email if self.requester is not None else "(a former member)"

    @property
    def window_end(self) -> datetime | None:
        """When it stopped (or will stop) giving access: its end, never past its time box."""
        ends = [t for t in (self.ended_at, self.expires_at) if t is not None]
        return min(ends) if ends else None

    def settle(self, now: datetime) -> Elevation:
        """Show a time box that is over as expired (a request past its lifetime as lapsed), in memory.

        The beat task marks them in the database within a minute; until then every page shows what
        ``authorize()`` already enforces, never "active" for a time box that is over.
        """
        if self.status == self.Status.ACTIVE and self.expires_at is not None and self.expires_at <= now:
            self.status, self.ended_at = self.Status.EXPIRED, self.expires_at
        elif self.status == self.Status.PENDING and self.pending_until <= now:
            self.status, self.ended_at = self.Status.LAPSED, self.pending_until
        return self


class Approval(TenantOwned):
    """One approver's decision on one elevation (approve or deny, with a comment)."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        DENY = "deny", "Denied"

    elevation = models.ForeignKey(Elevation, on_delete=models.CASCADE, related_name="approvals")
    # SET_NULL: a decision stays in the elevation's history after its approver leaves the tenant.
    approver = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    approver_email = models.EmailField(max_length=254, blank=True)
    decision = models.CharField(max_length=8, choices=Decision.choices)
    comment = models.CharField(max_length=500, blank=True)
    decided_at = models.DateTimeField()

    class Meta:
        ordering = ["decided_at", "id"]
        constraints = [
            # Each approval from a distinct person, whatever the races.
            models.UniqueConstraint(fields=["tenant", "elevation", "approver"], name="bg_approval_one_per_person"),
        ]

    def __str__(self) -> str:
        return f"{self.decision} #{self.elevation_id}"

    @property
    def approver_address(self) -> str:
        """Who decided: their e-mail, also after they left the tenant."""
        if self.approver_email:
            return self.approver_email
        return self.approver.user.email if self.approver is not None else "(a former member)"


class IncidentWebhook(TenantOwned):
    """A tenant's incoming incident webhook: the URL token and its signing secrets (encrypted, never shown again)."""

    # Random, in the URL only to find the tenant; the secret, not the token, authenticates a delivery.
    token = models.CharField(max_length=64, unique=True)
    # Fernet tokens (apps.breakglass.secretbox): the plain secret is needed to check an HMAC, so it
    # is stored encrypted under a key derived from SECRET_KEY, never hashed and never in plain text.
    secret_encrypted = models.TextField()
    # During a rotation the previous secret keeps verifying until ``previous_valid_until``.
    previous_secret_encrypted = models.TextField(blank=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="bg_incident_webhook_one_per_tenant")]

    def __str__(self) -> str:
        return f"incident webhook of tenant {self.tenant_id}"


class WebhookReceipt(TenantOwned):
    """A verified delivery's replay key (its signature or its provider's event id), kept past the tolerance window."""

    key = models.CharField(max_length=200)
    received_at = models.DateTimeField()

    class Meta:
        constraints = [
            # A replay inserts the same key: the unique constraint refuses it even when two arrive at once.
            models.UniqueConstraint(fields=["tenant", "key"], name="bg_webhook_receipt_once"),
        ]
        indexes = [models.Index(fields=["received_at"], name="bg_webhook_receipt_age")]

    def __str__(self) -> str:
        return self.key


class IncidentClosure(TenantOwned):
    """An incident closed from the console or by a verified webhook, and how many elevations it ended."""

    class Source(models.TextChoices):
        CONSOLE = "console", "Console"
        GENERIC = "generic", "Webhook"
        PAGERDUTY = "pagerduty", "PagerDuty"

    incident_ref = models.CharField(max_length=100)
    source = models.CharField(max_length=12, choices=Source.choices)
    closed_by = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    closed_at = models.DateTimeField()
    ended = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-closed_at", "-id"]
        indexes = [models.Index(fields=["tenant", "-closed_at"], name="bg_incident_closure_time")]

    def __str__(self) -> str:
        return f"{self.incident_ref} closed"
