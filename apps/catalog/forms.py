"""Catalog forms: parse what people type; the services decide what is valid.

Forms that point at other rows take ``tenant`` and narrow their querysets to
it. Errors raised by a service come back through ``apply_service_errors`` and
appear next to the field they concern.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError

from apps.catalog import selectors
from apps.catalog.models import AIModel, Dataset, Tool
from apps.catalog.validation import (
    MAX_ALLOWLIST_ENTRIES,
    MAX_ARGS_CAP_BYTES,
    MAX_OUTPUT_CAP_BYTES,
    MAX_SCHEMA_BYTES,
    MAX_TAG_LENGTH,
    MAX_TAGS,
    MIB,
    parse_json_document,
)
from apps.tenants.models import Tenant

# Pretty-printed JSON is larger than the compact form the 64 KiB schema limit
# is measured on; allow room for indentation but bound the parse.
MAX_SCHEMA_TEXT_BYTES = 4 * MAX_SCHEMA_BYTES
DEFAULT_SCHEMA = {"type": "object", "properties": {}, "additionalProperties": False}
_LIST_SPLIT_RE = re.compile(r"[,\n]")


def apply_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """Attach a service's ValidationError to the form: by field where the form has it, else on top."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.error_dict.items():
        form.add_error(field if field in form.fields and field != NON_FIELD_ERRORS else None, errors)


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in _LIST_SPLIT_RE.split(text or "") if item.strip()]


class DatasetForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="Unique within this tenant, up to 100 characters.")
    description = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the data is and where it comes from (up to 2,000 characters).",
    )
    classification = forms.ChoiceField(
        choices=Dataset.Classification.choices,
        initial=Dataset.Classification.INTERNAL,
        help_text="Restricted and confidential data should be readable by as few roles as possible.",
    )
    contains_personal_data = forms.BooleanField(
        required=False, help_text="Tick if any record can identify a person (GDPR personal data)."
    )
    owner = forms.ModelChoiceField(
        queryset=None,
        required=False,
        empty_label="No owner",
        help_text="The active member accountable for this dataset.",
    )
    tags = forms.CharField(
        max_length=MAX_TAGS * (MAX_TAG_LENGTH + 2),
        required=False,
        help_text=(
            f"Comma-separated, up to {MAX_TAGS} tags of up to {MAX_TAG_LENGTH} lowercase letters, digits or . _ : -"
        ),
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["owner"].queryset = selectors.dataset_owner_choices(tenant=tenant)
        self.fields["owner"].label_from_instance = lambda user: user.email

    @classmethod
    def initial_for(cls, dataset: Dataset) -> dict[str, Any]:
        return {
            "name": dataset.name,
            "description": dataset.description,
            "classification": dataset.classification,
            "contains_personal_data": dataset.contains_personal_data,
            "owner": dataset.owner_id,
            "tags": ", ".join(dataset.tags),
        }

    def clean_tags(self) -> list[str]:
        return _split_list(self.cleaned_data.get("tags", ""))


class ToolForm(forms.Form):
    name = forms.CharField(
        max_length=64,
        help_text="The name AI apps call it by: 1–64 letters, digits, underscores or hyphens; unique in this tenant.",
    )
    description = forms.CharField(
        max_length=2000,
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What the tool does, for people and for the model (up to 2,000 characters).",
    )
    args_schema = forms.CharField(
        label="Argument schema",
        widget=forms.Textarea(attrs={"rows": 14, "class": "mono", "spellcheck": "false"}),
        help_text=(
            "A JSON Schema (draft 2020-12) object describing the arguments, at most 64 KiB. "
            "Only local references (“#/$defs/…”) are allowed."
        ),
    )
    egress_allowlist = forms.CharField(
        label="Egress allowlist",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "class": "mono", "spellcheck": "false"}),
        help_text=(
            f"Hosts the tool may reach, one per line (up to {MAX_ALLOWLIST_ENTRIES}): api.example.com, "
            "*.example.com for any sub-domain (not example.com itself), or an IP address such as 203.0.113.7. "
            "A host is reachable on the standard port only (443 for https, 80 for http); list any other port "
            "as host:port (api.example.com:8443, [2001:db8::1]:8443). No scheme or path. "
            "Empty means no network access."
        ),
    )
    output_cap_bytes = forms.IntegerField(
        label="Output cap (bytes)",
        min_value=1,
        max_value=MAX_OUTPUT_CAP_BYTES,
        initial=1 * MIB,
        help_text=f"Largest output the tool may return, 1 to {MAX_OUTPUT_CAP_BYTES:,} bytes (10 MiB).",
    )
    args_cap_bytes = forms.IntegerField(
        label="Argument cap (bytes)",
        min_value=1,
        max_value=MAX_ARGS_CAP_BYTES,
        required=False,
        help_text=f"Largest arguments accepted, up to {MAX_ARGS_CAP_BYTES:,} bytes. Blank means 64 KiB.",
    )
    risk_level = forms.ChoiceField(choices=Tool.RiskLevel.choices, initial=Tool.RiskLevel.MEDIUM)
    allowlisted = forms.BooleanField(
        required=False, help_text="Allow this tenant's apps to call the tool. Unticked tools are always refused."
    )
    requires_preauth = forms.BooleanField(
        label="Requires preauthorisation",
        required=False,
        help_text="High-risk: each call needs a budget reservation first (POST /api/v1/budget/reservations).",
    )

    @classmethod
    def initial_for(cls, tool: Tool | None) -> dict[str, Any]:
        if tool is None:
            return {"args_schema": json.dumps(DEFAULT_SCHEMA, indent=2)}
        return {
            "name": tool.name,
            "description": tool.description,
            "args_schema": json.dumps(tool.args_schema, indent=2, ensure_ascii=False),
            "egress_allowlist": "\n".join(tool.egress_allowlist),
            "output_cap_bytes": tool.output_cap_bytes,
            "args_cap_bytes": tool.args_cap_bytes,
            "risk_level": tool.risk_level,
            "allowlisted": tool.allowlisted,
            "requires_preauth": tool.requires_preauth,
        }

    def clean_args_schema(self) -> Any:
        return parse_json_document(self.cleaned_data.get("args_schema", ""), max_bytes=MAX_SCHEMA_TEXT_BYTES)

    def clean_egress_allowlist(self) -> list[str]:
        return _split_list(self.cleaned_data.get("egress_allowlist", ""))


class AIModelForm(forms.Form):
    provider = forms.ChoiceField(choices=AIModel.Provider.choices)
    model_name = forms.CharField(
        max_length=100,
        help_text="The provider's model id, e.g. gpt-4o-mini or claude-sonnet-4 (letters, digits, . _ : / @ -).",
    )
    price_per_1k_input = forms.DecimalField(
        label="Price per 1,000 input tokens",
        min_value=Decimal(0),
        max_digits=12,
        decimal_places=6,
        initial=Decimal(0),
        help_text="In the tenant's billing currency; up to 6 decimal places.",
    )
    price_per_1k_output = forms.DecimalField(
        label="Price per 1,000 output tokens",
        min_value=Decimal(0),
        max_digits=12,
        decimal_places=6,
        initial=Decimal(0),
        help_text="In the tenant's billing currency; up to 6 decimal places.",
    )
    enabled = forms.BooleanField(required=False, help_text="Members with model.use may send prompts to it.")
    requires_preauth = forms.BooleanField(
        label="Requires preauthorisation",
        required=False,
        help_text="High-risk: each call needs a budget reservation first (POST /api/v1/budget/reservations).",
    )

    @classmethod
    def initial_for(cls, model: AIModel) -> dict[str, Any]:
        return {
            "provider": model.provider,
            "model_name": model.model_name,
            "price_per_1k_input": model.price_per_1k_input,
            "price_per_1k_output": model.price_per_1k_output,
            "enabled": model.enabled,
            "requires_preauth": model.requires_preauth,
        }


_YES_NO = [("", "Any"), ("yes", "Yes"), ("no", "No")]


class _FilterForm(forms.Form):
    """List filters: an invalid value is reported and ignored, never a server error."""

    def filters(self) -> dict[str, Any]:
        if not self.is_valid():
            return {}
        values = {}
        for name, value in self.cleaned_data.items():
            if value in ("", None):
                continue
            values[name] = {"yes": True, "no": False}.get(value, value) if name in self.yes_no else value
        return values

    yes_no: tuple[str, ...] = ()


class DatasetFilterForm(_FilterForm):
    classification = forms.ChoiceField(choices=[("", "Any"), *Dataset.Classification.choices], required=False)
    personal_data = forms.ChoiceField(label="Personal data", choices=_YES_NO, required=False)
    yes_no = ("personal_data",)


class ToolFilterForm(_FilterForm):
    risk_level = forms.ChoiceField(label="Risk", choices=[("", "Any"), *Tool.RiskLevel.choices], required=False)
    allowlisted = forms.ChoiceField(choices=_YES_NO, required=False)
    yes_no = ("allowlisted",)


class AIModelFilterForm(_FilterForm):
    provider = forms.ChoiceField(choices=[("", "Any"), *AIModel.Provider.choices], required=False)
    enabled = forms.ChoiceField(choices=_YES_NO, required=False)
    yes_no = ("enabled",)
