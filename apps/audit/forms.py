"""The audit log's filter form (list pages and exports, tenant and platform scope).

Every value arrives in the query string, so everything is validated here and
a bad value becomes a form error the page shows with status 400, never a 500.
"""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters
from apps.core.filtering import KeysetFilterForm
from apps.tenants.models import Tenant
from apps.tenants.selectors import tenant_get

PLATFORM_SCOPE = "platform"
_ACTION_RE = re.compile(r"^[A-Za-z0-9_.:-]+\*?$")


class AuditFilterForm(KeysetFilterForm):
    """Filters of the audit list. ``platform=True`` adds the tenant filter of the platform page.

    The cursor, the date range and the query string are ``KeysetFilterForm``'s.
    """

    actor = forms.CharField(
        label="Actor",
        max_length=254,
        required=False,
        help_text="E-mail address or actor id",
        widget=forms.TextInput(attrs={"placeholder": "alice@example.com", "autocomplete": "off"}),
    )
    action = forms.CharField(
        label="Action",
        max_length=100,
        required=False,
        help_text="Exact, or a prefix such as member.",
        widget=forms.TextInput(attrs={"placeholder": "member.", "autocomplete": "off"}),
    )
    result = forms.ChoiceField(label="Result", choices=[("", "Any result"), *AuditEvent.Result.choices], required=False)
    target_type = forms.CharField(
        label="Target type",
        max_length=64,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "membership", "autocomplete": "off"}),
    )
    target_id = forms.CharField(
        label="Target id",
        max_length=64,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "42", "autocomplete": "off"}),
    )
    date_from = forms.CharField(
        label="From",
        max_length=40,
        required=False,
        help_text="UTC; a date or a date and time",
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD", "autocomplete": "off"}),
    )
    date_to = forms.CharField(
        label="To",
        max_length=40,
        required=False,
        help_text="Inclusive: a date covers the whole day",
        widget=forms.TextInput(attrs={"placeholder": "YYYY-MM-DD", "autocomplete": "off"}),
    )
    size = forms.IntegerField(
        label="Page size",
        min_value=1,
        max_value=settings.AUDIT_PAGE_SIZE_MAX,
        required=False,
        widget=forms.NumberInput(attrs={"placeholder": str(settings.AUDIT_PAGE_SIZE_DEFAULT)}),
    )

    filter_fields = ("tenant", "actor", "action", "result", "target_type", "target_id", "date_from", "date_to")
    query_fields = ("size",)
    invalid_cursor_message = "This page link is invalid. Start again from the newest events."

    def __init__(self, *args: Any, platform: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.platform = platform
        self.tenant: Tenant | None = None
        if platform:
            self.fields["tenant"] = forms.CharField(
                label="Tenant",
                max_length=40,
                required=False,
                help_text="A slug, or “platform” for platform events",
                widget=forms.TextInput(attrs={"placeholder": "all tenants", "autocomplete": "off"}),
            )
            self.order_fields(["tenant"])

    def clean_action(self) -> str:
        action = self.cleaned_data["action"]
        if action and not _ACTION_RE.match(action):
            raise ValidationError(
                "Use letters, digits and . _ : - only; end with “.” or “*” to match a prefix.", code="invalid"
            )
        return action

    def clean_tenant(self) -> str:
        slug = self.cleaned_data["tenant"].strip().lower()
        if slug and slug != PLATFORM_SCOPE:
            self.tenant = tenant_get(slug=slug)
            if self.tenant is None:
                raise ValidationError(f"There is no tenant with the slug “{slug[:40]}”.", code="invalid")
        return slug

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("target_id") and not data.get("target_type"):
            self.add_error("target_type", "Choose a target type to filter by target id.")
        return data

    # --- results of a valid form ------------------------------------------

    def filters(self) -> AuditFilters:
        """The cleaned filters; call only after is_valid()."""
        data = self.cleaned_data
        return AuditFilters(
            actor=data["actor"],
            action=data["action"],
            result=data["result"],
            target_type=data["target_type"],
            target_id=data["target_id"],
            occurred_from=data["date_from"],
            occurred_before=data["date_to"],
            tenant=self.tenant,
            platform_only=data.get("tenant") == PLATFORM_SCOPE,
        )

    @property
    def page_size(self) -> int:
        return self.cleaned_data.get("size") or settings.AUDIT_PAGE_SIZE_DEFAULT
