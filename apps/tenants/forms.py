"""Input cleaning for the tenant console (members and invitations).

Forms that offer roles take the acting membership and narrow the choices to
the roles the actor may hand out (only an owner is offered the owner role, and
nobody a role carrying more than they hold). The services enforce the same
rules whatever a form offers.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.forms import SetPasswordForm
from django.core.validators import MaxLengthValidator

from apps.access.escalation import builtin_roles_handable
from apps.sso.policy import InviteWarning, invite_sign_in_warning
from apps.tenants.invitations import INVITATION_MAX_AGE
from apps.tenants.models import Membership

MAX_SEARCH_LENGTH = 254
MAX_PASSWORD_LENGTH = 128


def role_choices_for(actor: Membership | None) -> list[tuple[str, str]]:
    """The built-in roles ``actor`` may hand out: owner only for an owner, and none carrying more than they hold."""
    if actor is None:
        return []
    allowed = builtin_roles_handable(actor=actor, tenant=actor.tenant)
    return [
        (value, label)
        for value, label in Membership.Role.choices
        if value in allowed and (value != Membership.Role.OWNER or actor.role == Membership.Role.OWNER)
    ]


class _RoleChoiceMixin:
    def _narrow_roles(self, actor: Membership | None) -> None:
        field = self.fields["role"]  # type: ignore[attr-defined]
        field.choices = role_choices_for(actor)
        field.error_messages["invalid_choice"] = "Choose one of the roles you are allowed to grant."


class InviteForm(_RoleChoiceMixin, forms.Form):
    """Invite one person by e-mail with a base role."""

    email = forms.EmailField(
        label="E-mail address",
        max_length=254,
        help_text=f"They get a link valid for {INVITATION_MAX_AGE // (24 * 3600)} days. "
        "If they have no Bastion account yet, they choose a password.",
        error_messages={"invalid": "Enter a complete e-mail address, like name@example.com."},
    )
    role = forms.ChoiceField(
        label="Role",
        choices=Membership.Role.choices,
        initial=Membership.Role.MEMBER,
        help_text="Viewers can only look; members use models, tools and datasets; admins manage the tenant.",
    )

    invite_anyway = forms.BooleanField(
        label="Invite anyway: I know this person cannot sign in until that is sorted out",
        required=False,
    )

    def __init__(self, *args: Any, actor: Membership | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._narrow_roles(actor)
        self.tenant = actor.tenant if actor is not None else None
        self.sign_in_warning: InviteWarning | None = None

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()

    def clean(self) -> dict[str, Any]:
        """Ask the sign-in policy whether the person could ever sign in; if not, say so and ask to confirm.

        A warning, not a refusal: the admin may be about to verify the domain
        or relax the policy. The rule is ``apps.sso.policy.invite_sign_in_warning``.
        """
        cleaned = super().clean() or {}
        if self.tenant is None or self.errors or not cleaned.get("email") or not cleaned.get("role"):
            return cleaned
        self.sign_in_warning = invite_sign_in_warning(tenant=self.tenant, email=cleaned["email"], role=cleaned["role"])
        if self.sign_in_warning is not None and not cleaned.get("invite_anyway"):
            raise forms.ValidationError(self.sign_in_warning.message, code="cannot_sign_in")
        return cleaned


class RoleForm(_RoleChoiceMixin, forms.Form):
    """Change one member's base role."""

    role = forms.ChoiceField(label="Role", choices=Membership.Role.choices)

    def __init__(self, *args: Any, actor: Membership | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._narrow_roles(actor)


class MemberFilterForm(forms.Form):
    """Filters of the members list; an invalid value is reported and ignored."""

    q = forms.CharField(label="Search", required=False, max_length=MAX_SEARCH_LENGTH, strip=True)
    status = forms.ChoiceField(label="Status", required=False, choices=[("", "Any status"), *Membership.Status.choices])
    role = forms.ChoiceField(label="Role", required=False, choices=[("", "Any role"), *Membership.Role.choices])

    def filters(self) -> dict[str, str]:
        """The cleaned filters, or none at all if any value was invalid."""
        if not self.is_valid():
            return {}
        return {
            "search": self.cleaned_data["q"],
            "status": self.cleaned_data["status"],
            "role": self.cleaned_data["role"],
        }


class InvitationPasswordForm(SetPasswordForm):
    """The invitee's first password, checked by every configured password validator."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["new_password1"].label = "Choose a password"
        self.fields["new_password2"].label = "Repeat the password"
        for field in self.fields.values():
            field.widget.attrs["maxlength"] = str(MAX_PASSWORD_LENGTH)
            field.validators.append(
                MaxLengthValidator(MAX_PASSWORD_LENGTH, f"Use at most {MAX_PASSWORD_LENGTH} characters.")
            )
