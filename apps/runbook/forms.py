"""Input cleaning for the runbook and retention pages; the rules themselves are in the services."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.runbook.models import RunbookItem
from apps.runbook.retention import MAX_DAYS, minimums
from apps.runbook.services import MAX_NOTE


class MarkForm(forms.Form):
    mark = forms.ChoiceField(
        choices=RunbookItem.Mark.choices,
        widget=forms.RadioSelect,
        help_text="Expected: reviewed, nothing to change. Fix: something must change (say what in the note).",
    )
    note = forms.CharField(
        max_length=MAX_NOTE,
        required=False,
        widget=forms.TextInput(attrs={"placeholder": "Note (required for “fix”)"}),
        help_text="Why this is expected, or what will be fixed and by whom.",
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if data.get("mark") == RunbookItem.Mark.FIX and not (data.get("note") or "").strip():
            self.add_error("note", "Say what will be fixed, and by whom.")
        return data


class SignOffForm(forms.Form):
    note = forms.CharField(
        max_length=MAX_NOTE,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional: anything the next review should know.",
    )


_LABELS = {
    "audit_days": ("Audit events", "Security events in the audit log. The platform requires at least {min} days."),
    "denied_days": (
        "Denied decisions",
        "Refused access checks (the drift review reads them). At least {min} days.",
    ),
    "usage_days": (
        "Usage detail",
        "Per-call usage events; hourly totals are kept regardless. At least {min} days.",
    ),
    "prompt_days": (
        "Raw prompts and outputs",
        "Bastion stores no prompt or output text today; this applies as soon as something does.",
    ),
}


class RetentionForm(forms.Form):
    """How many days each kind is kept; the minimums are the platform's (read when the form is built)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        floor = minimums()
        for name, (label, help_text) in _LABELS.items():
            self.fields[name] = forms.IntegerField(
                label=f"{label} (days)",
                min_value=floor[name],
                max_value=MAX_DAYS,
                help_text=help_text.format(min=floor[name]),
                error_messages={
                    "min_value": f"At least {floor[name]} days: the platform does not allow a shorter retention.",
                    "max_value": f"At most {MAX_DAYS} days.",
                    "invalid": "Enter a whole number of days.",
                    "required": "Enter a number of days.",
                },
            )
