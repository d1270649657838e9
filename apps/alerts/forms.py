"""Forms of the alerts pages: parse what people type; the services decide what is valid."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django import forms
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_email

from apps.alerts.models import Alert, AlertRule, Delivery, FraudCase, FraudPolicy, Metric, Signal, WebhookEndpoint
from apps.alerts.selectors import assignee_choices
from apps.tenants.models import Tenant

_SPLIT = re.compile(r"[,\s;]+")


def apply_service_errors(form: forms.Form, exc: ValidationError) -> None:
    """A service's ValidationError on the form: by field where the form has it, else on top."""
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.error_dict.items():
        form.add_error(field if field in form.fields and field != NON_FIELD_ERRORS else None, errors)


class EmailListField(forms.CharField):
    """Comma- or space-separated e-mail addresses, each checked."""

    def clean(self, value: Any) -> list[str]:
        text = super().clean(value) or ""
        addresses = [a for a in _SPLIT.split(text) if a]
        bad = []
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                bad.append(address)
        if bad:
            raise ValidationError(f"Not an e-mail address: {', '.join(bad[:3])}.")
        return list(dict.fromkeys(a.lower() for a in addresses))


class RuleForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="Unique within this tenant, e.g. “Spend surge”.")
    metric = forms.ChoiceField(choices=Metric.choices, help_text="What is measured over the last 60 minutes.")
    mode = forms.ChoiceField(
        choices=AlertRule.Mode.choices,
        initial=AlertRule.Mode.BASELINE,
        help_text="Baseline: fire when the last hour is more than the factor times its usual value. "
        "Fixed: fire above the threshold.",
    )
    threshold = forms.DecimalField(
        required=False,
        max_digits=14,
        decimal_places=4,
        help_text="For a fixed threshold: the value that must be exceeded (greater than zero). Spend in the "
        "billing currency, tool error rate in percent.",
    )
    factor = forms.DecimalField(
        initial=Decimal(3), max_digits=6, decimal_places=2, help_text="For a baseline: how many times the usual value."
    )
    alpha = forms.DecimalField(
        label="Smoothing (α)",
        initial=Decimal("0.3"),
        max_digits=4,
        decimal_places=3,
        help_text="Weight of the newest hour in the baseline, above 0 and at most 1 (0.3: about the last 6 hours).",
    )
    min_volume = forms.IntegerField(
        label="Minimum volume",
        initial=20,
        min_value=1,
        max_value=10**9,
        help_text="Stay quiet below this many events in the hour (usage events, tool calls, denials, failed sign-ins).",
    )
    email_recipients = EmailListField(
        required=False,
        max_length=2000,
        label="E-mail to",
        help_text="Addresses told when an alert opens, comma-separated (up to 10). Webhooks are set up separately.",
    )
    enabled = forms.BooleanField(required=False, initial=True, help_text="Evaluated every 5 minutes while enabled.")

    @staticmethod
    def initial_for(rule: AlertRule | None) -> dict[str, Any]:
        if rule is None:
            return {}
        values = {
            f: getattr(rule, f)
            for f in ("name", "metric", "mode", "threshold", "factor", "alpha", "min_volume", "enabled")
        }
        values["email_recipients"] = ", ".join(rule.email_recipients)
        return values

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        threshold = cleaned.get("threshold")
        if threshold is not None and threshold <= 0:
            self.add_error("threshold", "The threshold must be greater than zero.")
        elif cleaned.get("mode") == AlertRule.Mode.THRESHOLD and threshold is None and "threshold" not in self.errors:
            self.add_error("threshold", "A fixed-threshold rule needs a threshold.")
        factor, alpha = cleaned.get("factor"), cleaned.get("alpha")
        if factor is not None and factor <= 1:
            self.add_error("factor", "The factor must be greater than 1 (1 would fire on any increase).")
        if alpha is not None and not (0 < alpha <= 1):
            self.add_error("alpha", "Smoothing must be above 0 and at most 1.")
        return cleaned


class EndpointForm(forms.Form):
    name = forms.CharField(max_length=80, help_text="Unique within this tenant, e.g. “PagerDuty bridge”.")
    url = forms.CharField(
        label="URL",
        max_length=500,
        help_text="https only, on port 443; Bastion refuses private, loopback and link-local addresses.",
    )
    send_alerts = forms.BooleanField(required=False, initial=True, help_text="Anomaly alerts when they open.")
    send_fraud = forms.BooleanField(required=False, initial=False, help_text="Fraud cases when they open.")
    enabled = forms.BooleanField(required=False, initial=True)

    @staticmethod
    def initial_for(endpoint: WebhookEndpoint | None) -> dict[str, Any]:
        if endpoint is None:
            return {}
        return {f: getattr(endpoint, f) for f in ("name", "url", "send_alerts", "send_fraud", "enabled")}


class FraudPolicyForm(forms.Form):
    enabled = forms.BooleanField(required=False, help_text="Screen this tenant's usage every 5 minutes.")
    long_context_tokens = forms.IntegerField(
        min_value=1,
        max_value=10**9,
        label="Long context (tokens)",
        help_text="A call with at least this many tokens of context.",
    )
    long_context_min_events = forms.IntegerField(
        min_value=1,
        max_value=10**6,
        label="Long contexts per hour",
        help_text="How many such calls in an hour raise a case.",
    )
    retry_storm_repeats = forms.IntegerField(
        min_value=2,
        max_value=10**6,
        label="Retry storm",
        help_text="The same prompt this many times within one minute.",
    )
    unlisted_tool_min_calls = forms.IntegerField(
        min_value=1,
        max_value=10**6,
        label="Unlisted tool calls",
        help_text="Calls to tools outside the client's allowlist in an hour.",
    )
    cost_spike_factor = forms.DecimalField(
        max_digits=6,
        decimal_places=2,
        label="Cost spike factor",
        help_text="Times the client's usual hourly cost (above 1).",
    )
    cost_min_events = forms.IntegerField(
        min_value=1,
        max_value=10**6,
        label="Cost spike minimum calls",
        help_text="Calls in the hour before a spike counts.",
    )
    email_recipients = EmailListField(
        required=False, max_length=2000, label="E-mail to", help_text="Told when a case opens."
    )

    @staticmethod
    def initial_for(policy: FraudPolicy) -> dict[str, Any]:
        fields = [f for f in FraudPolicyForm.base_fields if f != "email_recipients"]
        return {**{f: getattr(policy, f) for f in fields}, "email_recipients": ", ".join(policy.email_recipients)}


class AssignForm(forms.Form):
    assignee = forms.ModelChoiceField(queryset=None, required=False, empty_label="Nobody", help_text="Who reviews it.")

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["assignee"].queryset = assignee_choices(tenant=tenant)
        self.fields["assignee"].label_from_instance = lambda m: m.user.email


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("confirm", "Confirm"), ("dismiss", "Dismiss")])
    note = forms.CharField(
        required=False,
        max_length=500,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Why (kept with the case and in the audit log).",
    )
    disable_client = forms.BooleanField(
        required=False,
        label="Disable the API client",
        help_text="Confirming only: its tokens are refused from the next call on.",
    )

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if cleaned.get("decision") == "dismiss" and cleaned.get("disable_client"):
            self.add_error("disable_client", "Only a confirmed case can disable the client.")
        return cleaned


class AlertFilterForm(forms.Form):
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), ("active", "Open or acknowledged"), *Alert.Status.choices]
    )
    metric = forms.ChoiceField(required=False, choices=[("", "Any metric"), *Metric.choices])

    def filters(self) -> dict[str, str]:
        return {k: v for k, v in self.cleaned_data.items() if v} if self.is_valid() else {}


class CaseFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *FraudCase.Status.choices])
    signal = forms.ChoiceField(required=False, choices=[("", "Any signal"), *Signal.choices])

    def filters(self) -> dict[str, str]:
        return {k: v for k, v in self.cleaned_data.items() if v} if self.is_valid() else {}


class DeliveryFilterForm(forms.Form):
    status = forms.ChoiceField(required=False, choices=[("", "Any status"), *Delivery.Status.choices])
    channel = forms.ChoiceField(required=False, choices=[("", "Any channel"), *Delivery.Channel.choices])

    def filters(self) -> dict[str, str]:
        return {k: v for k, v in self.cleaned_data.items() if v} if self.is_valid() else {}
