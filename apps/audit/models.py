"""Audit log: append-only events in per-tenant HMAC hash chains.

Each tenant (and the platform, chain 0) has its own chain, so writers of
different tenants never wait on one another. The chain head row is the only
lock a writer takes, and only for its own tenant.
"""

from __future__ import annotations

from django.db import models
from django.db.models.functions import Collate, Upper

from apps.tenants.models import Tenant

PLATFORM_CHAIN = 0
# What an event records (who, what, the result, from where, and details), in the order
# exports show them. The export columns and the verification walk both build on this list.
EVENT_FIELDS = (
    "actor_type",
    "actor_id",
    "actor_display",
    "action",
    "target_type",
    "target_id",
    "result",
    "ip",
    "user_agent",
    "request_id",
    "metadata",
)


class AuditEventQuerySet(models.QuerySet):
    def for_tenant(self, tenant: Tenant | int) -> AuditEventQuerySet:
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        return self.filter(tenant_id=tenant_id)


class AuditEvent(models.Model):
    """One security-relevant change; never updated or deleted (database-enforced)."""

    class Result(models.TextChoices):
        SUCCESS = "success", "Success"
        FAILURE = "failure", "Failure"
        DENIED = "denied", "Denied"

    class ActorType(models.TextChoices):
        USER = "user", "User"
        API_CLIENT = "api_client", "API client"
        SYSTEM = "system", "System"
        ANONYMOUS = "anonymous", "Anonymous"

    chain = models.BigIntegerField(help_text="Tenant id, or 0 for platform events.")
    seq = models.BigIntegerField()
    occurred_at = models.DateTimeField()
    # PROTECT: deleting a tenant must never silently delete its audit trail.
    tenant = models.ForeignKey(Tenant, null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    # No foreign key: deleting a user would have to update (or cascade into) the
    # append-only table. The display snapshot keeps deleted actors readable.
    actor_id = models.CharField(max_length=64, blank=True)
    actor_display = models.CharField(max_length=254, blank=True)
    action = models.CharField(max_length=100)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    result = models.CharField(max_length=16, choices=Result.choices)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    prev_hash = models.BinaryField(max_length=32)
    hash = models.BinaryField(max_length=32)

    objects = AuditEventQuerySet.as_manager()

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["chain", "seq"], name="audit_event_chain_seq_unique"),
            models.CheckConstraint(
                condition=models.Q(result__in=["success", "failure", "denied"]), name="audit_event_result_valid"
            ),
        ]
        # Keyset pagination orders by (occurred_at, id); each filter the console
        # offers has an index that leads with tenant and ends with that order.
        indexes = [
            models.Index(fields=["tenant", "-occurred_at", "-id"], name="audit_tenant_time"),
            models.Index(fields=["tenant", "actor_id", "-occurred_at", "-id"], name="audit_tenant_actor_time"),
            # Actors that are not (or no longer) users are found by their display
            # snapshot, case-insensitively (actor_display__iexact compiles to UPPER()).
            models.Index(
                models.F("tenant"),
                Upper("actor_display"),
                models.F("occurred_at").desc(),
                models.F("id").desc(),
                name="audit_tenant_actordisp_time",
            ),
            # Byte-order collation: an action prefix ("member.") becomes an index
            # range (see selectors.event_queryset) whatever the database's collation.
            models.Index(
                models.F("tenant"),
                Collate("action", "C"),
                models.F("occurred_at").desc(),
                models.F("id").desc(),
                name="audit_tenant_action_c_time",
            ),
            models.Index(
                fields=["tenant", "target_type", "target_id", "-occurred_at", "-id"], name="audit_tenant_target_time"
            ),
            models.Index(fields=["-occurred_at", "-id"], name="audit_time"),
        ]

    def __str__(self) -> str:
        return f"{self.action} by {self.actor_display or self.actor_type} ({self.result})"


class AuditChainHead(models.Model):
    """The last link of one chain: writers lock this row (per tenant) to append."""

    chain = models.BigIntegerField(primary_key=True)
    seq = models.BigIntegerField()
    head_hash = models.BinaryField(max_length=32)
    prev_hash = models.BinaryField(max_length=32)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"chain {self.chain} at {self.seq}"


class AuditSeal(models.Model):
    """A periodic snapshot of a chain head, so truncating the tail is detectable."""

    chain = models.BigIntegerField()
    seq = models.BigIntegerField()
    head_hash = models.BinaryField(max_length=32)
    sealed_at = models.DateTimeField(auto_now_add=True)
    mac = models.BinaryField(max_length=32)

    class Meta:
        indexes = [models.Index(fields=["chain", "-seq"], name="audit_seal_chain_seq")]

    def __str__(self) -> str:
        return f"seal of chain {self.chain} at {self.seq}"


class AuditRetentionCut(models.Model):
    """Where the privileged retention path removed old events of a chain.

    Verification starts after ``up_to_seq`` from ``anchor_hash`` instead of genesis.
    """

    chain = models.BigIntegerField(primary_key=True)
    up_to_seq = models.BigIntegerField()
    anchor_hash = models.BinaryField(max_length=32)
    cut_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"chain {self.chain} purged up to {self.up_to_seq}"
