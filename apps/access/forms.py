"""Input cleaning for the access console: roles, bindings, object grants, explain, denied checks.

Every form that points at other rows takes ``tenant`` (and the acting
membership) and builds its choices from tenant-scoped selectors, so an id of
another tenant is never a valid choice: it comes back as a plain form error.
Forms that hand out access also refuse privilege escalation: nobody puts a
permission into a role, binds a role, or grants an object action that they do
not hold themselves. The services stay the last word (they validate again).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db.models import Model

from apps.access import selectors
from apps.access.decisions import can
from apps.access.models import CLEARANCE_CHOICES, Role
from apps.access.permissions import DEFAULT_CLEARANCE, OBJECT_ACTIONS, PERMISSIONS, Risk
from apps.catalog import selectors as catalog_selectors
from apps.core.filtering import KeysetFilterForm
from apps.tenants.models import SLUG_PATTERN, Membership, Tenant
from apps.tenants.selectors import MAX_ID

ROLE_KEY_MAX = 40
ROLE_NAME_MAX = 80
ROLE_DESCRIPTION_MAX = 300
IDP_GROUP_MAX = 200
SUBJECT_MAX = 254

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
role_key_validator = RegexValidator(
    rf"^{SLUG_PATTERN}$",
    "Use 1–40 lowercase letters, digits or hyphens; start and end with a letter or digit.",
)

PERMISSION_CHOICES = [(name, name) for name in PERMISSIONS]
# Headings for the permission checkboxes, by the part of the name before the dot.
AREA_LABELS = {
    "tenant": "Console",
    "prompt": "Prompts",
    "model": "Models",
    "dataset": "Datasets",
    "tool": "Tools",
    "billing": "Billing",
    "sso": "Sign-in",
    "member": "Members",
    "role": "Roles and grants",
    "audit": "Audit",
    "apiclient": "API clients",
    "key": "Keys",
    "breakglass": "Break-glass",
}


@dataclass(frozen=True, slots=True)
class PermissionOption:
    """One permission checkbox: catalog entry, whether it is ticked, and whether the actor may change it."""

    name: str
    description: str
    risk: Risk
    checked: bool
    locked: bool

    @property
    def input_id(self) -> str:
        return "id_permissions_" + self.name.replace(".", "_")


def risk_badge(risk: Risk | str) -> str:
    """The CSS badge class for a risk level (shared by the templates through the views)."""
    return {"high": "badge-err", "medium": "badge-warn", "low": "badge-ok"}.get(str(risk), "")


# --- roles ----------------------------------------------------------------------------------------


class RoleForm(forms.Form):
    """Create (with ``role=None``) or edit a custom role.

    ``held`` is what the actor holds tenant-wide. Permissions outside it are
    locked: they cannot be added, and on edit they keep their current state
    (a disabled checkbox is not submitted, so it must not count as removal).
    An unknown permission name (a crafted POST) is a field error.
    """

    key = forms.CharField(
        label="Key",
        max_length=ROLE_KEY_MAX,
        validators=[role_key_validator],
        help_text="Stable identifier used by the API and in audit events, e.g. data-steward. "
        "It cannot be changed later.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "data-steward"}),
    )
    name = forms.CharField(
        label="Name",
        max_length=ROLE_NAME_MAX,
        help_text=f"Shown in the console, unique within the tenant (up to {ROLE_NAME_MAX} characters).",
    )
    description = forms.CharField(
        label="Description",
        max_length=ROLE_DESCRIPTION_MAX,
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=f"Who should hold this role and why (up to {ROLE_DESCRIPTION_MAX} characters).",
    )
    permissions = forms.MultipleChoiceField(
        label="Permissions",
        choices=PERMISSION_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Everything the role allows in the whole tenant. High-risk permissions change security, "
        "money or data; give them sparingly.",
        error_messages={"invalid_choice": "“%(value)s” is not a permission Bastion knows. Nothing was saved."},
    )

    clearance = forms.ChoiceField(
        label="Dataset clearance",
        choices=CLEARANCE_CHOICES,
        initial=DEFAULT_CLEARANCE,
        required=False,
        help_text="How far the role's dataset permissions reach across the tenant: datasets classified up to this "
        "level. Restricted datasets are never covered by default: give the role an explicit grant on each one "
        "(Dataset and tool grants), or clear it for restricted only if it must read every restricted dataset. "
        "You can only clear a role as far as your own dataset permissions reach.",
        error_messages={"invalid_choice": "Choose one of the listed classifications."},
    )

    def __init__(
        self, *args: Any, tenant: Tenant, held: frozenset[str], role: Role | None = None, **kwargs: Any
    ) -> None:
        if role is not None:
            kwargs.setdefault(
                "initial",
                {
                    "name": role.name,
                    "description": role.description,
                    "permissions": list(role.permissions),
                    "clearance": role.clearance,
                },
            )
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.held = held
        self.role = role
        if role is not None:
            del self.fields["key"]

    def clean_key(self) -> str:
        key = self.cleaned_data["key"]
        if selectors.role_key_taken(tenant=self.tenant, key=key):
            raise ValidationError("A role with this key already exists. Choose another key.", code="taken")
        return key

    def clean_name(self) -> str:
        name = self.cleaned_data["name"]
        if _CONTROL_RE.search(name):
            raise ValidationError("Use printable characters only.", code="invalid")
        exclude = self.role.pk if self.role is not None else None
        if selectors.role_name_taken(tenant=self.tenant, name=name, exclude_id=exclude):
            raise ValidationError("Another role already has this name.", code="taken")
        return name

    def clean_clearance(self) -> str:
        # Not submitted (an older page, a script): keep the role's clearance, or the default for a new role.
        return self.cleaned_data["clearance"] or (self.role.clearance if self.role is not None else DEFAULT_CLEARANCE)

    def clean_permissions(self) -> list[str]:
        chosen = set(self.cleaned_data["permissions"])
        before = set(self.role.permissions) if self.role is not None else set()
        added_unheld = sorted(chosen - before - self.held)
        if added_unheld:
            raise ValidationError(
                "You can only give permissions you hold yourself. Not yours: %(names)s.",
                code="escalation",
                params={"names": ", ".join(added_unheld)},
            )
        # Locked permissions keep their current state whatever was submitted.
        return sorted((chosen & self.held) | (before - self.held))

    def permission_groups(self) -> list[tuple[str, list[PermissionOption]]]:
        """The permission checkboxes grouped by area, in catalog order, with their state."""
        value = self["permissions"].value() or []
        ticked = {str(item) for item in value}
        # Locked boxes are disabled and never submitted, so they show what saving will keep:
        # the stored state on edit, nothing on create (even when copying from another role).
        stored = set(self.role.permissions) if self.role is not None else set()
        ticked = (ticked & self.held) | (stored - self.held)
        groups: dict[str, list[PermissionOption]] = {}
        for permission in PERMISSIONS.values():
            area = AREA_LABELS.get(permission.name.split(".", 1)[0], "Other")
            groups.setdefault(area, []).append(
                PermissionOption(
                    name=permission.name,
                    description=permission.description,
                    risk=permission.risk,
                    checked=permission.name in ticked,
                    locked=permission.name not in self.held,
                )
            )
        return list(groups.items())


class RoleDeleteForm(forms.Form):
    """Confirm the deletion of a role; ``confirm`` is required only while the role is bound."""

    confirm = forms.BooleanField(
        label="I understand that everyone listed above loses these permissions now.",
        required=False,
    )


# --- bindings -------------------------------------------------------------------------------------


class MembershipChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Membership) -> str:
        suffix = "" if obj.status == Membership.Status.ACTIVE else f" ({obj.get_status_display().lower()})"
        return f"{obj.user.email}{suffix}"


class BindingForm(forms.Form):
    """Give a role to one member of the tenant or to an identity-provider group (exactly one).

    The member choice holds only this tenant's active and invited members. The
    actor must hold every permission of the role.
    """

    member = MembershipChoiceField(
        label="Member",
        queryset=None,
        required=False,
        empty_label="— choose a member —",
        error_messages={"invalid_choice": "Choose a member of this tenant."},
    )
    idp_group = forms.CharField(
        label="or IdP group",
        max_length=IDP_GROUP_MAX,
        required=False,
        help_text="The group name exactly as your identity provider sends it (case-sensitive). "
        "Everyone who signs in with this group holds the role.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "e.g. eng-data-stewards"}),
    )

    def __init__(self, *args: Any, tenant: Tenant, role: Role, held: frozenset[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.role = role
        self.held = held
        self.fields["member"].queryset = selectors.membership_choices(tenant=tenant)  # type: ignore[attr-defined]

    def clean_idp_group(self) -> str:
        group = self.cleaned_data["idp_group"]
        if _CONTROL_RE.search(group):
            raise ValidationError("Use printable characters only, on one line.", code="invalid")
        return group

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        member, group = data.get("member"), data.get("idp_group", "")
        if self.errors:
            return data
        if (member is None) == (not group):
            raise ValidationError("Choose a member or type a group name — one of the two.", code="one_of")
        missing = sorted(set(self.role.permissions) - self.held)
        if missing:
            raise ValidationError(
                "You can only hand out roles whose permissions you hold yourself. Not yours: %(names)s.",
                code="escalation",
                params={"names": ", ".join(missing)},
            )
        if selectors.binding_exists(tenant=self.tenant, role=self.role, membership=member, idp_group=group):
            holder = member.user.email if member is not None else f"the group “{group}”"
            raise ValidationError("%(holder)s already has this role.", code="exists", params={"holder": holder})
        return data


# --- object grants --------------------------------------------------------------------------------


def target_choices(*, tenant: Tenant, subject: Membership) -> tuple[list[Any], dict[str, Model]]:
    """Datasets and tools of ``tenant`` the actor can see, as grouped choices ``dataset:<id>``/``tool:<id>``.

    Returns the choices and a lookup from choice value to the object (two queries).
    """
    datasets = catalog_selectors.dataset_list(tenant=tenant, subject=subject).select_related(None)
    tools = catalog_selectors.tool_list(tenant=tenant, subject=subject)
    lookup: dict[str, Model] = {}
    groups: list[Any] = []
    for label, rows in (
        ("Datasets", datasets.only("pk", "name", "tenant_id")),
        ("Tools", tools.only("pk", "name", "tenant_id")),
    ):
        options = []
        for row in rows:
            value = f"{row._meta.model_name}:{row.pk}"
            lookup[value] = row
            options.append((value, row.name))
        if options:
            groups.append((label, options))
    return groups, lookup


class GrantForm(forms.Form):
    """Grant (or, with ``revoke=True``, revoke) one object action to a role or a member.

    Choices are this tenant's datasets and tools, roles, and members. When
    granting, the actor must be allowed the action on that object themselves.
    Cleaned data gains ``obj``, ``role`` and ``membership``.
    """

    action = forms.ChoiceField(
        label="Action",
        choices=[(action, action) for action in OBJECT_ACTIONS],
        help_text="dataset.read and dataset.write apply to datasets, tool.execute to tools.",
        error_messages={"invalid_choice": "Choose an action that can be granted on one object."},
    )
    target = forms.ChoiceField(
        label="Dataset or tool",
        error_messages={"invalid_choice": "Choose a dataset or tool of this tenant."},
    )
    grantee = forms.ChoiceField(
        label="Grant to",
        help_text="A role reaches everyone who holds it; a member grant reaches that person only.",
        error_messages={"invalid_choice": "Choose a role or a member of this tenant."},
    )

    def __init__(self, *args: Any, tenant: Tenant, subject: Membership, revoke: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tenant = tenant
        self.subject = subject
        self.revoke = revoke
        targets, self._targets = target_choices(tenant=tenant, subject=subject)
        self.fields["target"].choices = [("", "— choose —"), *targets]
        # A grant held by a disabled member can still be revoked; new grants go to active or invited members.
        members = (
            selectors.explain_membership_choices(tenant=tenant)
            if revoke
            else selectors.membership_choices(tenant=tenant)
        )
        self._grantees: dict[str, Role | Membership] = {}
        role_options, member_options = [], []
        for role in selectors.role_list(tenant=tenant):
            self._grantees[f"role:{role.pk}"] = role
            role_options.append((f"role:{role.pk}", f"{role.name}{' (built-in)' if role.builtin else ''}"))
        for membership in members:
            self._grantees[f"member:{membership.pk}"] = membership
            member_options.append((f"member:{membership.pk}", membership.user.email))
        self.fields["grantee"].choices = [("", "— choose —"), ("Roles", role_options), ("Members", member_options)]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        action, obj = data["action"], self._targets[data["target"]]
        grantee = self._grantees[data["grantee"]]
        model = OBJECT_ACTIONS[action][1]
        if obj._meta.model_name != model:
            self.add_error("action", f"{action} applies to {model}s only; pick a {model} or another action.")
            return data
        if not self.revoke and not can(self.subject, action, obj, tenant=self.tenant):
            raise ValidationError(
                "You can only grant access you hold yourself: you may not %(action)s on “%(name)s”.",
                code="escalation",
                params={"action": action, "name": str(obj)},
            )
        data["obj"] = obj
        data["role"] = grantee if isinstance(grantee, Role) else None
        data["membership"] = grantee if isinstance(grantee, Membership) else None
        return data


class GrantsFilterForm(forms.Form):
    """Which objects the grants page lists: datasets or tools, and the page number."""

    KINDS = (("dataset", "Datasets"), ("tool", "Tools"))

    kind = forms.ChoiceField(
        label="Objects",
        choices=KINDS,
        required=False,
        error_messages={"invalid_choice": "Choose datasets or tools."},
    )
    page = forms.IntegerField(
        min_value=1, max_value=10**6, required=False, error_messages={"invalid": "The page is a number."}
    )

    @property
    def chosen_kind(self) -> str:
        return (self.cleaned_data.get("kind") if self.is_valid() else "") or "dataset"

    @property
    def chosen_page(self) -> int:
        return (self.cleaned_data.get("page") if self.is_valid() else None) or 1


# --- explain --------------------------------------------------------------------------------------


class ExplainForm(forms.Form):
    """What-if: may this member do this action (on this dataset or tool)? Submitted by GET."""

    member = MembershipChoiceField(
        label="Member",
        queryset=None,
        empty_label="— choose a member —",
        error_messages={"invalid_choice": "Choose a member of this tenant.", "required": "Choose a member."},
    )
    action = forms.ChoiceField(
        label="Action",
        choices=[("", "— choose an action —")]
        + [(name, f"{name} — {permission.description}") for name, permission in PERMISSIONS.items()],
        error_messages={
            "invalid_choice": "Choose an action from the permission catalog.",
            "required": "Choose an action.",
        },
    )
    resource = forms.ChoiceField(
        label="Dataset or tool",
        required=False,
        help_text="Optional. With a dataset or tool, object grants are considered too.",
        error_messages={"invalid_choice": "Choose a dataset or tool of this tenant, or none."},
    )

    def __init__(self, *args: Any, tenant: Tenant, subject: Membership, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["member"].queryset = selectors.explain_membership_choices(tenant=tenant)  # type: ignore[attr-defined]
        targets, self._targets = target_choices(tenant=tenant, subject=subject)
        self.fields["resource"].choices = [("", "— none (tenant-wide) —"), *targets]

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        resource = self._targets.get(data.get("resource") or "")
        action = data["action"]
        if resource is not None and action in OBJECT_ACTIONS:
            model = OBJECT_ACTIONS[action][1]
            if resource._meta.model_name != model:
                self.add_error("resource", f"{action} applies to {model}s; pick a {model} or none.")
        data["resource_obj"] = resource
        return data


# --- denied checks --------------------------------------------------------------------------------


class DeniedFilterForm(KeysetFilterForm):
    """Filters of the denied-checks page; every value comes from the query string and is validated.

    The cursor, the date range (dates, the "To" day included) and the query string are ``KeysetFilterForm``'s.
    """

    subject = forms.CharField(
        label="Subject",
        max_length=SUBJECT_MAX,
        required=False,
        help_text="A member's e-mail address or member id.",
        widget=forms.TextInput(attrs={"placeholder": "alice@example.com", "autocomplete": "off"}),
    )
    action = forms.ChoiceField(
        label="Action",
        required=False,
        choices=[("", "Any action"), *PERMISSION_CHOICES],
        error_messages={"invalid_choice": "“%(value)s” is not an action in the permission catalog."},
    )
    date_from = forms.DateField(
        label="From",
        required=False,
        input_formats=["%Y-%m-%d"],
        help_text="YYYY-MM-DD, UTC.",
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    date_to = forms.DateField(
        label="To",
        required=False,
        input_formats=["%Y-%m-%d"],
        help_text="Inclusive: the whole day counts.",
        error_messages={"invalid": "Enter a date as YYYY-MM-DD."},
        widget=forms.DateInput(attrs={"type": "date"}),
    )

    filter_fields = ("subject", "action", "date_from", "date_to")

    def clean_subject(self) -> str:
        subject = self.cleaned_data["subject"]
        if not subject:
            return ""
        if subject.isdigit():
            if not 0 < int(subject) <= MAX_ID:
                raise ValidationError("No member has this id.", code="invalid")
            return subject
        if "@" in subject and not _CONTROL_RE.search(subject) and " " not in subject:
            return subject.lower()
        raise ValidationError("Enter a member's e-mail address or member id.", code="invalid")

    def filters(self) -> selectors.DeniedFilters:
        """The cleaned filters as the selectors take them; call only after is_valid()."""
        data = self.cleaned_data
        return selectors.DeniedFilters(
            subject=data["subject"],
            action=data["action"],
            occurred_from=data["date_from"],
            occurred_before=data["date_to"],
        )
