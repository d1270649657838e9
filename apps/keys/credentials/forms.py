"""Input cleaning for the credential pages; the owner choice is narrowed to the tenant's active members."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from django import forms
from django.utils import timezone

from apps.keys.credentials import secretstores
from apps.keys.credentials.selectors import CredentialFilters
from apps.keys.credentials.services import MAX_INTERVAL_DAYS
from apps.keys.models import Credential
from apps.tenants import selectors as tenant_selectors
from apps.tenants.models import Membership, Tenant

PROVIDERS = [
    ("openai", "OpenAI"),
    ("anthropic", "Anthropic"),
    ("azure-openai", "Azure OpenAI"),
    ("google", "Google (Gemini / Vertex AI)"),
    ("aws-bedrock", "AWS Bedrock"),
    ("mistral", "Mistral"),
    ("cohere", "Cohere"),
    ("huggingface", "Hugging Face"),
    ("pinecone", "Pinecone"),
    ("github", "GitHub"),
    ("slack", "Slack"),
    ("other", "Other tool or provider"),
]


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Membership) -> str:
        return f"{obj.user.email} ({obj.get_role_display()})"


class CredentialForm(forms.Form):
    name = forms.CharField(
        max_length=80, help_text="How your team calls it, e.g. “OpenAI – support bot (prod)”. Unique here."
    )
    provider = forms.ChoiceField(choices=PROVIDERS, help_text="Whose key it is.")
    environment = forms.ChoiceField(choices=Credential.Environment.choices, initial=Credential.Environment.PROD)
    purpose = forms.CharField(
        max_length=300,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="What uses it, so whoever rotates it knows what to redeploy.",
    )
    owner = OwnerChoiceField(
        queryset=None,  # narrowed to the tenant's active members in __init__
        required=False,
        empty_label="Nobody (reminders go to the admins)",
        help_text="The member who rotates it; reminders go to them (to the admins when empty).",
    )
    reference = forms.CharField(
        max_length=secretstores.MAX_REFERENCE_LENGTH,
        help_text="Where the secret lives — never the secret itself.",
    )
    rotation_interval_days = forms.IntegerField(
        min_value=1,
        max_value=MAX_INTERVAL_DAYS,
        initial=90,
        label="Rotate every (days)",
        help_text="The next rotation is due this many days after the last one (90 = quarterly).",
    )
    last_rotated_on = forms.DateField(
        required=False,
        label="Last rotated on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="When the secret was last changed, if you know it; empty means today.",
    )

    def __init__(self, *args: Any, tenant: Tenant, editing: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.fields["owner"].queryset = tenant_selectors.member_list(tenant=tenant, status="active")
        vault, env = secretstores.vault_prefix(tenant), secretstores.env_prefix(tenant)
        self.fields["reference"].help_text += (
            f" vault://{vault}<name>#<field> for a Vault/OpenBao KV v2 secret, or env://{env}<NAME> for an "
            "environment variable of the Bastion server."
        )
        self.fields["reference"].widget.attrs["placeholder"] = f"vault://{vault}openai#api_key"
        if editing:
            del self.fields["last_rotated_on"]

    def clean_reference(self) -> str:
        try:
            return secretstores.validate(self.cleaned_data["reference"], tenant=self.tenant)
        except secretstores.BadReferenceError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_last_rotated_on(self) -> datetime | None:
        day = self.cleaned_data.get("last_rotated_on")
        if day is None:
            return None
        today = timezone.now().date()
        if day > today:
            raise forms.ValidationError("The last rotation cannot be in the future.")
        if (today - day).days > MAX_INTERVAL_DAYS:
            raise forms.ValidationError("That date is too far in the past (at most ten years ago).")
        return datetime.combine(day, time(12, 0), tzinfo=UTC)


class RotateForm(forms.Form):
    new_value = forms.CharField(
        required=False,
        min_length=16,
        max_length=4096,
        strip=False,
        label="New secret value",
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Paste the new key from the provider's console, or leave empty to let Bastion generate a "
        "random 256-bit value (for tool secrets you control). It goes to the vault only: Bastion never shows, "
        "stores or logs it.",
    )


class RecordRotationForm(forms.Form):
    rotated_on = forms.DateField(
        label="Rotated on",
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        help_text="The day the secret was changed where it lives.",
    )
    note = forms.CharField(
        max_length=300, required=False, help_text="Optional: a ticket or change number, or where it was rotated."
    )

    def clean_rotated_on(self) -> datetime:
        day = self.cleaned_data["rotated_on"]
        today = timezone.now().date()
        if day > today:
            raise forms.ValidationError("The rotation cannot be in the future.")
        # Today: now. An earlier day: its noon (UTC), so the recorded moment sits inside that day.
        return timezone.now() if day == today else datetime.combine(day, time(12, 0), tzinfo=UTC)


class CredentialSettingsForm(forms.Form):
    allow_vault_writes = forms.BooleanField(
        required=False,
        label="Let Bastion write new secret versions to the vault",
        help_text="When on, “Rotate now” writes a new version of a vault:// secret (generated or pasted). "
        "When off, rotate in the vault or at the provider and record the rotation here.",
    )


class CredentialFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=80, label="Search")
    provider = forms.ChoiceField(required=False, choices=[("", "Any provider"), *PROVIDERS])
    environment = forms.ChoiceField(required=False, choices=[("", "Any environment"), *Credential.Environment.choices])
    state = forms.ChoiceField(
        required=False,
        label="Due",
        choices=[("", "Any"), ("overdue", "Overdue"), ("due_soon", "Due within 14 days"), ("ok", "Not due soon")],
    )

    def filters(self) -> CredentialFilters:
        if not self.is_valid():
            return CredentialFilters()
        data = self.cleaned_data
        return CredentialFilters(
            provider=data["provider"], environment=data["environment"], state=data["state"], query=data["q"].strip()
        )
