"""Guardrails console forms."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.catalog import selectors as catalog_selectors
from apps.catalog.validation import MAX_ARGS_CAP_BYTES, parse_json_document
from apps.tenants.models import Membership, Tenant

# The largest argument cap a tool can have; the service then applies the
# tool's own (smaller) cap and says so in the verdict.
MAX_ARGUMENT_TEXT_BYTES = MAX_ARGS_CAP_BYTES


class TryToolCallForm(forms.Form):
    """A trial tool call. Takes ``tenant`` and ``subject``: tools and datasets are narrowed to
    what this member can see in this tenant, so another tenant's ids are "not a valid choice".
    """

    tool = forms.ModelChoiceField(queryset=None, empty_label="Choose a tool", help_text="The tool to call.")
    datasets = forms.ModelMultipleChoiceField(
        queryset=None,
        required=False,
        widget=forms.SelectMultiple(attrs={"size": 6}),
        help_text="Datasets the call would read (data lineage). Hold Ctrl or ⌘ to choose several.",
    )
    arguments = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 10, "class": "mono", "spellcheck": "false"}),
        initial="{}",
        help_text=f"The call's arguments as JSON, at most {MAX_ARGUMENT_TEXT_BYTES:,} bytes.",
    )

    def __init__(self, *args: Any, tenant: Tenant, subject: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["tool"].queryset = catalog_selectors.tool_list(tenant=tenant, subject=subject)
        self.fields["datasets"].queryset = catalog_selectors.dataset_list(tenant=tenant, subject=subject)

    def clean_arguments(self) -> Any:
        return parse_json_document(self.cleaned_data.get("arguments", ""), max_bytes=MAX_ARGUMENT_TEXT_BYTES)
