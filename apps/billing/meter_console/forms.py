"""Forms of the usage and budget pages; a form pointing at rows takes the tenant and narrows every choice to it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.conf import settings

from apps.access.selectors import role_list
from apps.billing.models import Budget
from apps.keys.selectors import apiclient_list
from apps.tenants.models import Tenant

WINDOWS = (("7", "Last 7 days"), ("30", "Last 30 days"), ("90", "Last 90 days"))


class UsageFilterForm(forms.Form):
    """The usage page's window and grouping; an invalid value falls back to the default, never an error page."""

    days = forms.TypedChoiceField(choices=WINDOWS, coerce=int, required=False, label="Period", initial="30")
    by = forms.ChoiceField(
        choices=(("model", "By model"), ("client", "By API client")), required=False, label="Group", initial="model"
    )

    def values(self) -> tuple[int, str]:
        if not self.is_valid():
            return 30, "model"
        return self.cleaned_data.get("days") or 30, self.cleaned_data.get("by") or "model"


class BudgetForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="How alerts and API denials name this budget.")
    scope = forms.ChoiceField(
        choices=Budget.Scope.choices,
        help_text="Whole tenant: every call. Role: calls of API clients acting as it, and calls made for members "
        "whose base role it is. API client: every call the client reports.",
    )
    role = forms.ModelChoiceField(queryset=None, required=False, help_text="Only for a role budget.")
    client = forms.ModelChoiceField(
        queryset=None, required=False, label="API client", help_text="Only for a client budget."
    )
    amount = forms.DecimalField(
        label="Monthly limit",
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=2,
        help_text="Hard limit per calendar month (UTC): usage and guard calls over it are denied.",
    )
    soft_percent = forms.IntegerField(
        label="Alert at (%)",
        min_value=1,
        max_value=100,
        initial=80,
        help_text="Share of the limit at which billing managers get an e-mail and an in-app notice, once a month.",
    )
    per_minute = forms.DecimalField(
        label="Per-minute limit",
        min_value=Decimal("0.01"),
        max_digits=14,
        decimal_places=2,
        required=False,
        help_text="Optional throttle: at most this much spend per minute (a token bucket on money). Empty = none.",
    )
    active = forms.BooleanField(required=False, initial=True, help_text="Inactive budgets are shown but not enforced.")

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].queryset = role_list(tenant=tenant)
        self.fields["client"].queryset = apiclient_list(tenant=tenant)
        self.fields["client"].label_from_instance = lambda client: f"{client.name} ({client.client_id})"
        currency = settings.BILLING_CURRENCY
        self.fields["amount"].label = f"Monthly limit ({currency})"
        self.fields["per_minute"].label = f"Per-minute limit ({currency})"

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        scope = data.get("scope")
        if scope == Budget.Scope.ROLE and not data.get("role"):
            self.add_error("role", "Choose the role this budget is for.")
        if scope == Budget.Scope.CLIENT and not data.get("client"):
            self.add_error("client", "Choose the API client this budget is for.")
        return data

    @classmethod
    def initial_for(cls, budget: Budget) -> dict[str, Any]:
        return {
            "name": budget.name,
            "scope": budget.scope,
            "role": budget.role_id,
            "client": budget.client_id,
            "amount": budget.amount,
            "soft_percent": budget.soft_percent,
            "per_minute": budget.per_minute,
            "active": budget.active,
        }
