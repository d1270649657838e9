"""Input cleaning for the break-glass pages; the rules themselves are in ``services``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django import forms

from apps.breakglass.limits import MAX_GROUP_LENGTH, MAX_GROUPS, MAX_PENDING_MINUTES
from apps.breakglass.selectors import ElevationFilters
from apps.breakglass.services import ceiling_minutes
from apps.core.filtering import KeysetFilterForm

if TYPE_CHECKING:
    from apps.access.models import Role
    from apps.breakglass.models import Policy


class RequestForm(forms.Form):
    duration_minutes = forms.IntegerField(min_value=1, label="Duration (minutes)")
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)
    incident_ref = forms.CharField(max_length=100, required=False, label="Incident reference")

    @classmethod
    def for_policy(cls, policy: Policy) -> RequestForm:
        """The empty form shown under ``policy``: its own field ids, the cap and the incident rule in the labels.

        Display only: the service enforces the cap and the incident reference on whatever is posted.
        """
        form = cls(auto_id=f"id_policy{policy.pk}_%s")
        form.fields["duration_minutes"].help_text = f"At most {policy.max_duration_minutes} minutes."
        form.fields["duration_minutes"].widget.attrs["max"] = policy.max_duration_minutes
        if policy.incident_required:
            form.fields["incident_ref"].required = True
            form.fields["incident_ref"].help_text = "This policy needs the incident you are working on, e.g. INC-123."
        return form


class DecisionForm(forms.Form):
    comment = forms.CharField(max_length=500, required=False)


def _split(value: str) -> list[str]:
    """IdP group names, one a line or comma-separated; blanks dropped. ValidationError when too many or too long."""
    groups = [part.strip() for line in value.splitlines() for part in line.split(",") if part.strip()]
    if len(groups) > MAX_GROUPS:
        raise forms.ValidationError(f"At most {MAX_GROUPS} groups.")
    if any(len(group) > MAX_GROUP_LENGTH for group in groups):
        raise forms.ValidationError(f"A group name has at most {MAX_GROUP_LENGTH} characters.")
    return groups


class PolicyForm(forms.Form):
    """A policy's fields; the rules (approvals, cap, escalation) are checked by ``services.policy_create/update``.

    ``roles`` are the tenant's roles (from ``access.selectors.role_list``), so a role id of another
    tenant is not a valid choice here, and the service refuses it again anyway.
    """

    name = forms.CharField(max_length=80, help_text="What requesters see, e.g. “Incident responder”.")
    role = forms.TypedChoiceField(coerce=int, help_text="The role an approved request grants for its time box.")
    max_duration_minutes = forms.IntegerField(
        min_value=1,
        label="Maximum duration (minutes)",
        help_text="A hard cap per request; never above the platform ceiling.",
    )
    approvals_required = forms.IntegerField(
        min_value=1,
        max_value=3,
        initial=1,
        label="Approvals needed",
        help_text="Distinct approvers, 1 to 3. A role that manages roles, members, SSO or billing needs at least 2.",
    )
    pending_minutes = forms.IntegerField(
        min_value=1,
        max_value=MAX_PENDING_MINUTES,
        initial=60,
        label="Decide within (minutes)",
        help_text="A request not decided in this time lapses and can no longer be approved.",
    )
    incident_required = forms.BooleanField(required=False, label="Requests must name an incident")
    requester_roles = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Who may request (roles)",
        help_text="Leave roles and groups empty to open the policy to everyone holding breakglass.request.",
    )
    requester_groups = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Who may request (IdP groups)",
        help_text="One group a line, as your identity provider sends it.",
    )
    approver_roles = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        label="Who may approve (roles)",
        help_text="Approvers also need breakglass.approve; nobody may approve their own request.",
    )
    approver_groups = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        label="Who may approve (IdP groups)",
        help_text="One group a line.",
    )

    def __init__(self, *args: Any, roles: Iterable[Role], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        roles = list(roles)
        self.roles_by_id = {role.pk: role for role in roles}
        self.fields["role"].choices = [("", "Choose a role")] + [(role.pk, role.name) for role in roles]
        ceiling = ceiling_minutes()
        self.fields[
            "max_duration_minutes"
        ].help_text = f"A hard cap per request; at most {ceiling} minutes ({ceiling / 60:g} h) on this installation."
        keys = [(role.key, role.name) for role in roles]
        self.fields["requester_roles"].choices = keys
        self.fields["approver_roles"].choices = keys

    @classmethod
    def initial_for(cls, policy: Policy) -> dict[str, Any]:
        return {
            "name": policy.name,
            "role": policy.role_id,
            "max_duration_minutes": policy.max_duration_minutes,
            "approvals_required": policy.approvals_required,
            "pending_minutes": policy.pending_minutes,
            "incident_required": policy.incident_required,
            "requester_roles": list(policy.requester_roles),
            "requester_groups": "\n".join(policy.requester_groups),
            "approver_roles": list(policy.approver_roles),
            "approver_groups": "\n".join(policy.approver_groups),
        }

    def clean_role(self) -> Role:
        role = self.roles_by_id.get(self.cleaned_data["role"])
        if role is None:
            raise forms.ValidationError("Choose one of this tenant's roles.")
        return role

    def clean_requester_groups(self) -> list[str]:
        return _split(self.cleaned_data["requester_groups"])

    def clean_approver_groups(self) -> list[str]:
        return _split(self.cleaned_data["approver_groups"])


class IncidentCloseForm(forms.Form):
    incident_ref = forms.CharField(
        max_length=100,
        label="Incident reference",
        help_text="As requesters typed it, e.g. INC-123 (letter case does not matter). Every active elevation "
        "naming it ends now and every pending request naming it is cancelled.",
    )


STATUS_FILTERS = [
    ("", "Any status"),
    ("active", "Active"),
    ("pending", "Waiting for approval"),
    ("history", "History (finished)"),
    ("denied", "Denied"),
    ("lapsed", "Not decided in time"),
    ("ended", "Ended early"),
    ("expired", "Expired"),
    ("cancelled", "Cancelled"),
]


class ElevationFilterForm(KeysetFilterForm):
    """Filters of the elevations page; ``policies`` are the tenant's (another tenant's id is not a choice)."""

    status = forms.ChoiceField(choices=STATUS_FILTERS, required=False, label="Status")
    person = forms.EmailField(
        required=False,
        label="Person",
        max_length=254,
        help_text="The requester's e-mail address",
        widget=forms.EmailInput(attrs={"placeholder": "alice@example.com", "autocomplete": "off"}),
    )
    policy = forms.TypedChoiceField(coerce=int, required=False, empty_value=None, label="Policy")
    date_from = forms.DateField(
        required=False, label="Requested from", help_text="UTC date", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(
        required=False,
        label="Requested to",
        help_text="Inclusive: the date covers its whole day",
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    filter_fields = ("status", "person", "policy", "date_from", "date_to")

    def __init__(self, *args: Any, policies: Iterable[Policy], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["policy"].choices = [("", "Any policy"), *((p.pk, p.name) for p in policies)]

    def filters(self) -> ElevationFilters:
        data = self.cleaned_data
        return ElevationFilters(
            status=data.get("status") or "",
            person=(data.get("person") or "").strip(),
            policy_id=data.get("policy"),
            requested_from=data.get("date_from"),
            requested_before=data.get("date_to"),
        )
