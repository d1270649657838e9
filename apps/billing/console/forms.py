"""Forms of the billing console: plans (staff), change plan (tenant), grace extension (staff)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator

from apps.billing.dunning import MAX_EXTENSION_DAYS
from apps.billing.models import Plan
from apps.billing.plans import PRICE_ID
from apps.billing.subscriptions import MAX_SEATS

MONEY = {"max_digits": 12, "decimal_places": 2, "min_value": Decimal("0")}


class PlanForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="Shown to tenants in “Change plan”, e.g. “Team”.")
    stripe_price_id = forms.CharField(
        label="Stripe price id",
        max_length=255,
        validators=[RegexValidator(PRICE_ID.pattern, "A Stripe price id looks like price_1PgafmB7WZ01zgkW6dKueIc5.")],
        help_text="The recurring per-seat price in your Stripe dashboard (Products → price → “price_…”). "
        "Checkout charges this price; its amount should match the seat price below.",
    )
    included_tokens = forms.IntegerField(
        min_value=0,
        max_value=10**15,
        initial=0,
        help_text="Tokens per month included in the plan before usage is charged (0 = none).",
    )
    currency = forms.CharField(
        max_length=3,
        min_length=3,
        initial="eur",
        validators=[RegexValidator(r"^[A-Za-z]{3}$", "Use a three-letter ISO currency code such as EUR.")],
        help_text="ISO code of the Stripe price's currency (EUR, USD…).",
    )
    seat_price = forms.DecimalField(
        max_digits=10, decimal_places=2, min_value=Decimal("0"), help_text="Price per seat per month, for display."
    )
    soft_limit = forms.DecimalField(
        required=False,
        **MONEY,
        help_text="Monthly spend at which billing admins are warned. Empty: no warning.",
    )
    hard_limit = forms.DecimalField(
        required=False,
        **MONEY,
        help_text="Monthly spend beyond which usage is refused. Empty: no hard limit. Must be at least the soft limit.",
    )
    active = forms.BooleanField(
        required=False, initial=True, help_text="Offered to tenants. Existing subscriptions keep an inactive plan."
    )

    @classmethod
    def for_plan(cls, plan: Plan | None, data: Any = None) -> PlanForm:
        initial = {field: getattr(plan, field) for field in cls.base_fields} if plan is not None else None
        return cls(data=data, initial=initial)

    def clean_currency(self) -> str:
        return self.cleaned_data["currency"].lower()

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        soft, hard = data.get("soft_limit"), data.get("hard_limit")
        if soft is not None and hard is not None and soft > hard:
            self.add_error("soft_limit", "The soft limit must not be above the hard limit.")
        return data


class ChangePlanForm(forms.Form):
    seats = forms.IntegerField(
        min_value=1,
        max_value=MAX_SEATS,
        initial=1,
        help_text="Members who will use Bastion; Stripe bills the plan's seat price for each.",
    )


class GraceForm(forms.Form):
    days = forms.IntegerField(
        validators=[MinValueValidator(1), MaxValueValidator(MAX_EXTENSION_DAYS)],
        initial=7,
        help_text=f"Days added to the grace of every unpaid failed invoice (1–{MAX_EXTENSION_DAYS}); "
        "counted from now if the grace has already run out.",
    )
    reason = forms.CharField(
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why the tenant gets more time (e.g. “bank transfer announced, ticket 4711”). "
        "Goes into the audit log.",
    )
