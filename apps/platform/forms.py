"""Input cleaning for the platform staff area."""

from __future__ import annotations

from django import forms

from apps.tenants import selectors
from apps.tenants.models import RESERVED_SLUGS, Tenant, slug_validator

MAX_SEARCH_LENGTH = 100


class TenantFilterForm(forms.Form):
    """Search and status filter of the tenant list; an invalid value is reported and ignored."""

    q = forms.CharField(label="Search", required=False, max_length=MAX_SEARCH_LENGTH, strip=True)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *Tenant.Status.choices])

    def filters(self) -> dict[str, str]:
        if not self.is_valid():
            return {}
        return {"search": self.cleaned_data["q"], "status": self.cleaned_data["status"]}


class TenantCreateForm(forms.Form):
    """A new tenant and the e-mail address of its first owner."""

    name = forms.CharField(
        label="Name",
        max_length=Tenant._meta.get_field("name").max_length,
        help_text="The organisation's name as its members will see it.",
    )
    slug = forms.CharField(
        label="Slug",
        max_length=Tenant._meta.get_field("slug").max_length,
        help_text="Part of the console's addresses (/t/your-slug/); it cannot be changed later. "
        "1–40 lowercase letters, digits or hyphens.",
    )
    owner_email = forms.EmailField(
        label="First owner's e-mail",
        max_length=254,
        help_text="We e-mail them an invitation; they choose a password and can then invite everyone else.",
        error_messages={"invalid": "Enter a complete e-mail address, like name@example.com."},
    )

    def clean_slug(self) -> str:
        # Slugs are lowercase: accept "Acme" and store "acme", then apply the model's rule.
        slug = self.cleaned_data["slug"].strip().lower()
        slug_validator(slug)
        if slug in RESERVED_SLUGS:
            raise forms.ValidationError("“%(slug)s” is reserved; choose another slug.", params={"slug": slug})
        if selectors.tenant_get(slug=slug) is not None:
            raise forms.ValidationError("The slug “%(slug)s” is already taken.", params={"slug": slug})
        return slug

    def clean_owner_email(self) -> str:
        return self.cleaned_data["owner_email"].strip().lower()


class TenantSuspendForm(forms.Form):
    """Why a tenant is suspended; members see the reason."""

    reason = forms.CharField(
        label="Reason",
        max_length=Tenant._meta.get_field("suspended_reason").max_length,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown to the tenant's members and kept in the audit log. Up to 500 characters.",
    )
