"""Tenants, memberships and the abstract bases every tenant-scoped model inherits."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import RegexValidator
from django.db import models
from django.db.models.functions import Now

from apps.tenants.querysets import MembershipQuerySet, TenantQuerySet, TenantScopedQuerySet

SLUG_PATTERN = r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?"
slug_validator = RegexValidator(
    rf"^{SLUG_PATTERN}$",
    "Use 1–40 lowercase letters, digits or hyphens; start and end with a letter or digit.",
)
RESERVED_SLUGS = frozenset({"new", "admin", "api", "platform", "settings", "static", "accounts", "www"})


class Tenant(models.Model):
    """An organisation using Bastion; everything it owns hangs off this row."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"

    slug = models.CharField(max_length=40, unique=True, validators=[slug_validator])
    name = models.CharField(max_length=120)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    suspended_at = models.DateTimeField(null=True, blank=True)
    suspended_reason = models.CharField(max_length=500, blank=True)
    # Who-may-do-what version: every role, binding, grant or group-sync change bumps it in the
    # change's own transaction (apps.access.permsets.bump_version). The entry query reads it with
    # the membership, and the process cache of permission sets keys on it, so a change is seen by
    # the very next request in every process without a shared-cache round trip.
    access_version = models.BigIntegerField(default=0, db_default=0, editable=False)

    objects = TenantQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=models.Q(status__in=["active", "suspended"]), name="tenant_status_valid"),
            models.CheckConstraint(condition=models.Q(slug__regex=rf"^{SLUG_PATTERN}$"), name="tenant_slug_valid"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Save; an update never writes ``access_version`` (only its bump moves it).

        A full save of an object loaded before a bump would otherwise put the old
        version back, and the permission sets cached under it would be served again.
        """
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "access_version"
            ]
        super().save(*args, **kwargs)

    @property
    def is_suspended(self) -> bool:
        # The plain value (the enum member's lookup costs more than the comparison): access
        # decisions ask this for every write.
        return self.status == "suspended"


class TenantScoped(models.Model):
    """Abstract base of every tenant-scoped model: a ``tenant`` foreign key and ``objects.for_tenant()``.

    Subclass ``TenantOwned`` (the tenant is required) or ``OptionalTenantOwned``
    (no tenant = the platform's own row). The architecture test takes every
    concrete subclass of this class as tenant-scoped. A subclass that declares
    its own manager must build it from ``TenantScopedQuerySet`` (or a subclass).
    """

    objects = TenantScopedQuerySet.as_manager()

    class Meta:
        abstract = True


class TenantOwned(TenantScoped):
    """Abstract base: a required, indexed tenant foreign key and ``for_tenant()``.

    Composite indexes of subclasses must lead with ``tenant``.
    """

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=True)

    class Meta:
        abstract = True


class OptionalTenantOwned(TenantScoped):
    """Abstract base: a nullable, indexed tenant foreign key; null means the platform's own row.

    ``for_tenant(tenant)`` gives one tenant's rows and ``for_tenant(None)`` the
    platform's (SSO connections, verified domains and sign-in policy exist at
    both levels). Composite indexes of subclasses must lead with ``tenant``.
    """

    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+", db_index=True)

    class Meta:
        abstract = True


class Membership(TenantOwned):
    """A user's place in a tenant: their status and base role."""

    class Status(models.TextChoices):
        INVITED = "invited", "Invited"
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"

    class Role(models.TextChoices):
        """The member's built-in role (apps.access.permissions.BUILTIN_ROLES); more roles come from bindings."""

        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        DEVELOPER = "developer", "Developer"
        ANALYST = "analyst", "Analyst"
        MEMBER = "member", "Member"
        BILLING = "billing", "Billing"
        AUDITOR = "auditor", "Auditor"
        APPROVER = "approver", "Approver"
        VIEWER = "viewer", "Viewer"

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.INVITED)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.MEMBER)
    invited_at = models.DateTimeField(db_default=Now())
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    joined_at = models.DateTimeField(null=True, blank=True)
    # Groups the identity provider asserted at the member's last SSO sign-in;
    # role bindings to a group apply while the group is listed here.
    idp_groups = ArrayField(models.CharField(max_length=200), default=list, blank=True)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "user"], name="membership_unique_user_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(status__in=["invited", "active", "disabled"]), name="membership_status_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(
                    role__in=[
                        "owner",
                        "admin",
                        "developer",
                        "analyst",
                        "member",
                        "billing",
                        "auditor",
                        "approver",
                        "viewer",
                    ]
                ),
                name="membership_role_valid",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="membership_tenant_status")]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.tenant_id} ({self.role}, {self.status})"


class MembershipRemoval(TenantOwned):
    """An administrator removed this person from the tenant: SSO does not add them back until re-invited."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    removed_at = models.DateTimeField(db_default=Now())
    removed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "user"], name="membership_removal_unique")]

    def __str__(self) -> str:
        return f"user {self.user_id} removed from tenant {self.tenant_id}"
