"""Runbooks, their checklist lines, restore-drill evidence and per-tenant retention settings."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from apps.tenants.models import Membership, TenantOwned


class DrillResult(models.Model):
    """One restore drill of the whole database (platform-level evidence every tenant's runbook links to)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        PASSED = "passed", "Passed"
        FAILED = "failed", "Failed"

    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    requested_via = models.CharField(max_length=40, blank=True)  # "command", "console", "beat"
    requested_at = models.DateTimeField(db_default=Now())
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveBigIntegerField(null=True, blank=True)
    source_database = models.CharField(max_length=63, blank=True)
    scratch_database = models.CharField(max_length=63, blank=True)
    server_version = models.CharField(max_length=40, blank=True)
    tool_version = models.CharField(max_length=120, blank=True)  # which pg_dump/pg_restore ran
    dump_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    tables = models.PositiveIntegerField(default=0)
    rows = models.PositiveBigIntegerField(default=0)
    # {table: [rows in the snapshot, rows restored]} for every table; mismatches lists those that differ.
    counts = models.JSONField(default=dict, blank=True)
    mismatches = models.JSONField(default=list, blank=True)
    chains_verified = models.PositiveIntegerField(default=0)
    events_verified = models.PositiveBigIntegerField(default=0)
    chain_problems = models.JSONField(default=list, blank=True)
    steps = models.JSONField(default=list, blank=True)  # [{"step": "dump", "ms": 812}, …]
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["status", "-finished_at"], name="drill_status_finished")]

    def __str__(self) -> str:
        return f"restore drill #{self.pk} ({self.status})"

    @property
    def duration_seconds(self) -> float | None:
        return None if self.duration_ms is None else round(self.duration_ms / 1000, 1)


class Runbook(TenantOwned):
    """A tenant's quarterly runbook: three checklists and an Owner's sign-off."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        SIGNED = "signed", "Signed off"

    quarter = models.CharField(max_length=7, help_text="e.g. 2026-Q4")
    period_start = models.DateField()  # the quarter's first day
    period_end = models.DateField()  # the next quarter's first day
    # The drift review covers [review_since, reviewed_until): from the last sign-off (or the previous
    # quarter's start for a tenant's first runbook) to the last time the lines were built.
    review_since = models.DateTimeField()
    reviewed_until = models.DateTimeField()
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    signed_at = models.DateTimeField(null=True, blank=True)
    signed_by = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    signed_by_display = models.CharField(max_length=254, blank=True)
    sign_off_note = models.CharField(max_length=1000, blank=True)

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "quarter"], name="runbook_one_per_tenant_quarter"),
            models.CheckConstraint(condition=models.Q(status__in=["open", "signed"]), name="runbook_status_valid"),
            models.CheckConstraint(
                condition=models.Q(status="open") | models.Q(signed_at__isnull=False), name="runbook_signed_has_time"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status", "-period_start"], name="runbook_tenant_status")]

    def __str__(self) -> str:
        return f"runbook {self.quarter} of tenant {self.tenant_id}"

    @property
    def is_open(self) -> bool:
        return self.status == self.Status.OPEN


class RunbookItem(TenantOwned):
    """One line of a runbook checklist, marked "expected" or "fix" with a note."""

    class Checklist(models.TextChoices):
        ROTATE = "rotate", "Rotate credentials"
        DRILL = "drill", "Restore drill"
        DRIFT = "drift", "Denied-access drift review"

    class Kind(models.TextChoices):
        CREDENTIAL = "credential", "Credential due"
        DRILL = "drill", "Restore drill"
        DENIED = "denied", "Denied checks"
        ACCESS_CHANGE = "access_change", "Role or binding change"
        DORMANT = "dormant", "No sign-in for 90 days"
        NOTICE = "notice", "Notice"

    class Mark(models.TextChoices):
        EXPECTED = "expected", "Expected"
        FIX = "fix", "Fix"

    runbook = models.ForeignKey(Runbook, on_delete=models.CASCADE, related_name="items")
    checklist = models.CharField(max_length=8, choices=Checklist.choices)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Stable identity of the line inside its runbook ("credential:12", "denied:34:dataset.read"), so a
    # refresh updates a line instead of adding it twice.
    ref = models.CharField(max_length=200)
    position = models.PositiveIntegerField(default=0)
    title = models.CharField(max_length=300)
    detail = models.JSONField(default=dict, blank=True)
    link = models.CharField(max_length=500, blank=True)  # a console path where the line can be acted on
    credential_id = models.BigIntegerField(null=True, blank=True)  # keys.Credential, for the live rotation status
    drill = models.ForeignKey(DrillResult, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    mark = models.CharField(max_length=8, choices=Mark.choices, blank=True)
    note = models.CharField(max_length=1000, blank=True)
    marked_at = models.DateTimeField(null=True, blank=True)
    marked_by = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    marked_by_display = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["runbook", "checklist", "position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["runbook", "ref"], name="runbookitem_unique_ref"),
            models.CheckConstraint(condition=models.Q(mark__in=["", "expected", "fix"]), name="runbookitem_mark_valid"),
        ]
        indexes = [models.Index(fields=["tenant", "runbook", "checklist"], name="runbookitem_tenant_runbook")]

    def __str__(self) -> str:
        return f"{self.checklist}: {self.title}"


class RetentionPolicy(TenantOwned):
    """How long a tenant keeps each kind of record (absent row = the platform defaults)."""

    audit_days = models.PositiveIntegerField()
    denied_days = models.PositiveIntegerField()
    usage_days = models.PositiveIntegerField()
    prompt_days = models.PositiveIntegerField()
    updated_at = models.DateTimeField(db_default=Now())
    updated_by = models.ForeignKey(Membership, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="retention_one_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(audit_days__gte=1, denied_days__gte=1, usage_days__gte=1, prompt_days__gte=1),
                name="retention_days_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"retention of tenant {self.tenant_id}"
