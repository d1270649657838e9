"""Input cleaning for the break-glass pages; the rules themselves are in ``services``."""

from __future__ import annotations

from django import forms


class RequestForm(forms.Form):
    duration_minutes = forms.IntegerField(min_value=1, label="Duration (minutes)")
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    incident_ref = forms.CharField(max_length=100, required=False, label="Incident reference")


class DecisionForm(forms.Form):
    comment = forms.CharField(max_length=500, required=False)
