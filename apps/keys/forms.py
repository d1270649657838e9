"""Input cleaning for the API-client console pages; every choice is narrowed to the request's tenant."""

from __future__ import annotations

from typing import Any

from django import forms

from apps.access import selectors as access_selectors
from apps.access.permissions import BUILTIN_ROLES, PERMISSIONS
from apps.core.filtering import KeysetFilterForm
from apps.keys.models import MAX_TOKEN_LIFETIME
from apps.tenants.models import Tenant


class ApiClientForm(forms.Form):
    name = forms.CharField(max_length=80)
    role = forms.ChoiceField(help_text="The role the client acts as. You can only choose roles you hold yourself.")
    audiences = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional: the audiences it may ask tokens for, one per line. Empty: the Bastion API only.",
    )
    signing_alg = forms.ChoiceField(
        choices=[("ES256", "ES256 (recommended)"), ("RS256", "RS256 (for libraries without ES256)")],
        initial="ES256",
        label="Token signature",
    )

    def __init__(self, *args: Any, tenant: Tenant, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        builtin = [(f"builtin:{key}", f"{role.name} (built-in)") for key, role in BUILTIN_ROLES.items()]
        custom = [
            (f"role:{role.pk}", role.name) for role in access_selectors.role_list(tenant=tenant) if not role.builtin
        ]
        self.fields["role"].choices = builtin + custom

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        choice = str(data.get("role") or "")
        kind, _, value = choice.partition(":")
        data["builtin_role"], data["role_obj"] = "", None
        if kind == "builtin" and value in BUILTIN_ROLES:
            data["builtin_role"] = value
        elif kind == "role" and value.isdigit():
            role = access_selectors.role_get(tenant=self.tenant, role_id=int(value))
            data["role_obj"] = role if role is not None and not role.builtin else None
            if data["role_obj"] is None:
                self.add_error("role", "Choose a role of this tenant.")
        data["audience_list"] = [line.strip() for line in str(data.get("audiences") or "").splitlines() if line.strip()]
        return data


MAX_RATE_LIMIT = 1_000_000  # as apps.keys.services (a typo guard)


class TokenPolicyForm(forms.Form):
    token_lifetime = forms.IntegerField(
        min_value=60,
        max_value=MAX_TOKEN_LIFETIME,
        label="Token lifetime (seconds)",
        help_text="How long an access token is valid: 60 to 900 seconds (15 minutes).",
    )
    rate_limit_per_minute = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_RATE_LIMIT,
        label="API rate limit per client (requests a minute)",
        help_text="Each client's limit on the runtime API unless the client has its own; bursts up to the same "
        "number. Empty: the installation default.",
    )


class RateLimitForm(forms.Form):
    rate_limit_per_minute = forms.IntegerField(
        required=False,
        min_value=1,
        max_value=MAX_RATE_LIMIT,
        label="API rate limit (requests a minute)",
        help_text="How many calls a minute this client may make to the runtime API (bursts up to the same "
        "number); over it, calls get 429 with Retry-After. Empty: the tenant's limit, else the default.",
    )


class ActivityForm(KeysetFilterForm):
    """The activity page's failure list: only the page cursor."""


class RotateForm(forms.Form):
    overlap_hours = forms.IntegerField(
        min_value=0,
        max_value=24 * 30,
        initial=24,
        label="Keep the old secret valid for (hours)",
        help_text="Long enough to deploy the new secret everywhere; 0 ends the old secret now.",
    )


class DisableForm(forms.Form):
    reason = forms.CharField(max_length=300, required=False)


class ExplainForm(forms.Form):
    """What-if for a client: ``action`` on an optional dataset or tool (``dataset:<id>`` / ``tool:<id>``)."""

    action = forms.ChoiceField(choices=[(name, name) for name in PERMISSIONS])
    resource = forms.CharField(required=False, max_length=40, help_text="Optional: dataset:<id> or tool:<id>.")


class RevokeKeyForm(forms.Form):
    reason = forms.CharField(max_length=300, help_text="Why the key is revoked now (recorded in the audit log).")
