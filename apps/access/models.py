"""Roles, role bindings and the log of denied decisions.

Object grants (a role or a member holding ``dataset.read`` on one dataset) are
django-guardian object permissions: a role's grants sit on the role's own
auth ``Group``; a member's grants on their ``User``.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from apps.access.permissions import CLASSIFICATIONS, DEFAULT_CLEARANCE
from apps.tenants.models import Membership, TenantOwned
from apps.tenants.querysets import TenantScopedQuerySet

CLEARANCE_CHOICES = [(value, value.capitalize()) for value in CLASSIFICATIONS]


class Role(TenantOwned):
    """A named set of catalog permissions; built-in roles are seeded per tenant and read-only."""

    key = models.SlugField(max_length=40, help_text="Stable identifier, e.g. data-steward.")
    name = models.CharField(max_length=80)
    description = models.CharField(max_length=300, blank=True)
    permissions = ArrayField(models.CharField(max_length=40), default=list, blank=True)
    builtin = models.BooleanField(default=False)
    # How far the role's tenant-wide dataset permissions reach; above it, only object grants count.
    clearance = models.CharField(
        max_length=16,
        choices=CLEARANCE_CHOICES,
        default=DEFAULT_CLEARANCE,
        help_text="The most sensitive dataset classification the role's dataset permissions cover tenant-wide. "
        "Datasets above it need an explicit grant.",
    )
    # The guardian identity that holds this role's object grants.
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="bastion_role")
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        ordering = ["-builtin", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="role_unique_key_per_tenant"),
            models.UniqueConstraint(fields=["tenant", "name"], name="role_unique_name_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(clearance__in=list(CLASSIFICATIONS)), name="role_clearance_valid"
            ),
        ]

    def __str__(self) -> str:
        return self.name


class RoleBindingQuerySet(TenantScopedQuerySet):
    def current(self, now: datetime | None = None) -> RoleBindingQuerySet:
        """Bindings in force at ``now`` (default: the clock): permanent ones and time boxes not yet over."""
        return self.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now or timezone.now()))

    def permanent(self) -> RoleBindingQuerySet:
        """Bindings without a time box (what the roles pages manage)."""
        return self.filter(expires_at__isnull=True)


class RoleBinding(TenantOwned):
    """Gives a role to one member, or to everyone in an identity-provider group; possibly time-boxed."""

    role = models.ForeignKey(Role, on_delete=models.CASCADE, related_name="bindings")
    membership = models.ForeignKey(
        Membership, null=True, blank=True, on_delete=models.CASCADE, related_name="role_bindings"
    )
    idp_group = models.CharField(max_length=200, blank=True, help_text="Group name as the identity provider sends it.")
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    # A time box (a break-glass elevation): the binding gives nothing from this instant on, checked
    # by every decision against the clock, whether or not a worker has tidied it up yet.
    expires_at = models.DateTimeField(null=True, blank=True)
    # Why a time-boxed binding exists, as decisions' reasons name it ("break-glass elevation #12,
    # approved by …"). Written by the workflow that owns the time box; access only shows it.
    reason = models.CharField(max_length=300, blank=True)

    objects = RoleBindingQuerySet.as_manager()

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(
                    models.Q(membership__isnull=False, idp_group="")
                    | models.Q(membership__isnull=True) & ~models.Q(idp_group="")
                ),
                name="rolebinding_member_xor_group",
            ),
            # Only permanent bindings are unique: a member may hold a role and, on top, elevations to it.
            models.UniqueConstraint(
                fields=["tenant", "role", "membership"],
                condition=models.Q(membership__isnull=False, expires_at__isnull=True),
                name="rolebinding_unique_member",
            ),
            models.CheckConstraint(
                condition=models.Q(expires_at__isnull=True) | models.Q(membership__isnull=False),
                name="rolebinding_timebox_member_only",
            ),
            models.UniqueConstraint(
                fields=["tenant", "role", "idp_group"],
                condition=~models.Q(idp_group=""),
                name="rolebinding_unique_group",
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "membership"], name="rolebinding_tenant_member"),
            models.Index(fields=["tenant", "idp_group"], name="rolebinding_tenant_group"),
        ]

    def __str__(self) -> str:
        return f"{self.role_id} → {self.membership_id or self.idp_group}"


class DeniedDecision(TenantOwned):
    """A refused authorisation: where a quarterly access review starts."""

    occurred_at = models.DateTimeField(db_default=Now())
    subject_type = models.CharField(max_length=16)
    subject_id = models.CharField(max_length=64)
    subject_display = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=40)
    resource_type = models.CharField(max_length=64, blank=True)
    resource_id = models.CharField(max_length=64, blank=True)
    reasons = models.JSONField(default=list)
    request_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "-occurred_at", "-id"], name="denied_tenant_time"),
            models.Index(fields=["tenant", "subject_id", "action"], name="denied_tenant_subject_action"),
            models.Index(fields=["tenant", "action", "-occurred_at"], name="denied_tenant_action_time"),
        ]

    def __str__(self) -> str:
        return f"{self.subject_display or self.subject_id} denied {self.action}"
