"""Catalog: the datasets, tools and models a tenant has registered.

Rows are tenant-owned; reads go through ``for_tenant()`` (see querysets.py and
selectors.py), writes through services.py, which validates before the
database constraints below get a chance to refuse.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.db.models.functions import Now

from apps.catalog.querysets import AIModelQuerySet, DatasetQuerySet, ToolQuerySet
from apps.catalog.validation import (
    MAX_ALLOWLIST_ENTRIES,
    MAX_ARGS_CAP_BYTES,
    MAX_OUTPUT_CAP_BYTES,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MIB,
)
from apps.tenants.models import TenantOwned

TOOL_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,99}$"


class Dataset(TenantOwned):
    """A body of data a tenant's AI apps may read, with its classification and owner."""

    class Classification(models.TextChoices):
        PUBLIC = "public", "Public"
        INTERNAL = "internal", "Internal"
        CONFIDENTIAL = "confidential", "Confidential"
        RESTRICTED = "restricted", "Restricted"

    name = models.CharField(max_length=100)
    description = models.CharField(max_length=2000, blank=True)
    classification = models.CharField(max_length=16, choices=Classification.choices, default=Classification.INTERNAL)
    contains_personal_data = models.BooleanField(default=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    tags = ArrayField(models.CharField(max_length=MAX_TAG_LENGTH), default=list, blank=True, size=MAX_TAGS)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now())

    objects = DatasetQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        # Object-level grants (apps.access.permissions.OBJECT_ACTIONS) are stored as these guardian permissions.
        permissions = [("dataset_read", "Read this dataset"), ("dataset_write", "Write to this dataset")]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="dataset_unique_name_per_tenant"),
            models.CheckConstraint(condition=~models.Q(name=""), name="dataset_name_not_blank"),
            models.CheckConstraint(
                condition=models.Q(classification__in=["public", "internal", "confidential", "restricted"]),
                name="dataset_classification_valid",
            ),
            models.CheckConstraint(condition=models.Q(tags__len__lte=MAX_TAGS), name="dataset_tags_max"),
        ]
        indexes = [models.Index(fields=["tenant", "classification", "name"], name="dataset_tenant_class_name")]

    def __str__(self) -> str:
        return self.name


class AIModel(TenantOwned):
    """A provider model the tenant may enable, with its prices per 1,000 tokens ("Model" in the UI)."""

    class Provider(models.TextChoices):
        OPENAI = "openai", "OpenAI"
        ANTHROPIC = "anthropic", "Anthropic"
        AZURE_OPENAI = "azure-openai", "Azure OpenAI"
        GOOGLE = "google", "Google"
        SELF_HOSTED = "self-hosted", "Self-hosted"

    provider = models.CharField(max_length=32, choices=Provider.choices)
    model_name = models.CharField(
        max_length=100,
        validators=[RegexValidator(MODEL_NAME_PATTERN, "Use letters, digits and . _ : / @ - only.")],
    )
    price_per_1k_input = models.DecimalField(
        max_digits=12, decimal_places=6, default=0, validators=[MinValueValidator(0)]
    )
    price_per_1k_output = models.DecimalField(
        max_digits=12, decimal_places=6, default=0, validators=[MinValueValidator(0)]
    )
    # Deny by default: a newly registered model is off until someone enables it.
    enabled = models.BooleanField(default=False)
    # High-risk: a call needs a budget reservation first (POST /api/v1/budget/reservations).
    requires_preauth = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now())

    objects = AIModelQuerySet.as_manager()

    class Meta:
        verbose_name = "model"
        ordering = ["provider", "model_name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "provider", "model_name"], name="aimodel_unique_name_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(provider__in=["openai", "anthropic", "azure-openai", "google", "self-hosted"]),
                name="aimodel_provider_valid",
            ),
            models.CheckConstraint(condition=~models.Q(model_name=""), name="aimodel_name_not_blank"),
            models.CheckConstraint(
                condition=models.Q(price_per_1k_input__gte=0, price_per_1k_output__gte=0),
                name="aimodel_prices_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "enabled", "provider"], name="aimodel_tenant_enabled")]

    def __str__(self) -> str:
        return f"{self.provider}/{self.model_name}"


class Tool(TenantOwned):
    """A callable tool: its argument schema, output cap, egress allowlist and risk."""

    class RiskLevel(models.TextChoices):
        LOW = "low", "Low"
        MEDIUM = "medium", "Medium"
        HIGH = "high", "High"

    name = models.CharField(
        max_length=64,
        validators=[RegexValidator(TOOL_NAME_PATTERN, "Use 1–64 letters, digits, underscores or hyphens.")],
    )
    description = models.CharField(max_length=2000, blank=True)
    args_schema = models.JSONField(default=dict, blank=True)
    egress_allowlist = ArrayField(models.CharField(max_length=255), default=list, blank=True)
    output_cap_bytes = models.PositiveIntegerField(
        default=1 * MIB, validators=[MinValueValidator(1), MaxValueValidator(MAX_OUTPUT_CAP_BYTES)]
    )
    # Null means the guardrail's default argument cap applies.
    args_cap_bytes = models.PositiveIntegerField(
        null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(MAX_ARGS_CAP_BYTES)]
    )
    risk_level = models.CharField(max_length=8, choices=RiskLevel.choices, default=RiskLevel.MEDIUM)
    # Deny by default: a registered tool runs only once the tenant allowlists it.
    allowlisted = models.BooleanField(default=False)
    # High-risk: a call needs a budget reservation first (POST /api/v1/budget/reservations).
    requires_preauth = models.BooleanField(default=False)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now())

    objects = ToolQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        # Object-level grants of tool.execute (apps.access.permissions.OBJECT_ACTIONS) use this guardian permission.
        permissions = [("tool_execute", "Run this tool")]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="tool_unique_name_per_tenant"),
            models.CheckConstraint(condition=models.Q(name__regex=TOOL_NAME_PATTERN), name="tool_name_valid"),
            models.CheckConstraint(
                condition=models.Q(risk_level__in=["low", "medium", "high"]), name="tool_risk_level_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(output_cap_bytes__gte=1, output_cap_bytes__lte=MAX_OUTPUT_CAP_BYTES),
                name="tool_output_cap_range",
            ),
            models.CheckConstraint(
                condition=models.Q(args_cap_bytes__isnull=True)
                | models.Q(args_cap_bytes__gte=1, args_cap_bytes__lte=MAX_ARGS_CAP_BYTES),
                name="tool_args_cap_range",
            ),
            models.CheckConstraint(
                condition=models.Q(egress_allowlist__len__lte=MAX_ALLOWLIST_ENTRIES), name="tool_allowlist_max"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "risk_level", "name"], name="tool_tenant_risk_name"),
            models.Index(fields=["tenant", "allowlisted", "name"], name="tool_tenant_allowlisted_name"),
        ]

    def __str__(self) -> str:
        return self.name
