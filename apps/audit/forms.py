"""The audit log's filter form (list pages and exports, tenant and platform scope).

Every value arrives in the query string, so everything is validated here and
a bad value becomes a form error the page shows with status 400, never a 500.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters
from apps.core.pagination import InvalidCursorError, decode_cursor
from apps.tenants.models import Tenant
from apps.tenants.selectors import tenant_get

PLATFORM_SCOPE = "platform"
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ACTION_RE = re.compile(r"^[A-Za-z0-9_.:-]+\*?$")


def parse_moment(text: str) -> tuple[datetime, bool]:
    """Parse a date or an ISO date-time; returns (aware datetime, whether only a date was given).

    A naive time is taken in the current time zone (UTC by default).
    Raises ValidationError with a message for the user.
    """
    text = text.strip()
    try:
        if _DATE_RE.match(text):
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=UTC), True
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"“{text[:40]}” is not a date or time: use YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC).", code="invalid"
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment, False


class AuditFilterForm(forms.Form):
    """Filters of the audit list. ``platform=True`` adds the tenant filter of the platform page."""

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
    cursor = forms.CharField(max_length=200, required=False, widget=forms.HiddenInput)

    filter_fields = ("tenant", "actor", "action", "result", "target_type", "target_id", "date_from", "date_to")

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

    def clean_date_from(self) -> datetime | None:
        text = self.cleaned_data["date_from"]
        return parse_moment(text)[0] if text else None

    def clean_date_to(self) -> datetime | None:
        """The exclusive upper bound: the next midnight for a date, the next microsecond for a time."""
        text = self.cleaned_data["date_to"]
        if not text:
            return None
        moment, date_only = parse_moment(text)
        try:
            return moment + (timedelta(days=1) if date_only else timedelta(microseconds=1))
        except OverflowError:
            raise ValidationError("That date is out of range.", code="invalid") from None

    def clean_cursor(self) -> str:
        cursor = self.cleaned_data["cursor"]
        if cursor:
            try:
                decode_cursor(cursor)
            except InvalidCursorError:
                raise ValidationError(
                    "This page link is invalid. Start again from the newest events.", code="invalid"
                ) from None
        return cursor

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
        start, end = data.get("date_from"), data.get("date_to")
        if start is not None and end is not None and start >= end:
            self.add_error("date_to", "“To” must not be before “From”.")
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

    def query_string(self, **extra: str) -> str:
        """The submitted filters (and page size) as a query string, plus ``extra``; never the old cursor."""
        names = (*self.filter_fields, "size")
        params = [(name, str(self.data.get(name, "")).strip()) for name in names if name in self.fields]
        params += list(extra.items())
        return urlencode([(name, value) for name, value in params if value])
