"""Break-glass policies, elevation requests and their approvals."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Now

from apps.access.models import Role, RoleBinding
from apps.tenants.models import Membership, TenantOwned

DEFAULT_PENDING_MINUTES = 60


class Policy(TenantOwned):
    """Who may ask for which role, for how long, and who must approve."""

    name = models.CharField(max_length=80)
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="+")
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

    policy = models.ForeignKey(Policy, on_delete=models.PROTECT, related_name="elevations")
    requester = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="+")
    role = models.ForeignKey(Role, on_delete=models.PROTECT, related_name="+")
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
        ]

    def __str__(self) -> str:
        return f"elevation #{self.pk}"


class Approval(TenantOwned):
    """One approver's decision on one elevation (approve or deny, with a comment)."""

    class Decision(models.TextChoices):
        APPROVE = "approve", "Approved"
        DENY = "deny", "Denied"

    elevation = models.ForeignKey(Elevation, on_delete=models.CASCADE, related_name="approvals")
    approver = models.ForeignKey(Membership, on_delete=models.CASCADE, related_name="+")
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
