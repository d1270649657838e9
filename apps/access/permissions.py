"""The permission catalog: every action Bastion can authorise, defined once.

Deny by default: an action not granted by a role is refused. The foundation
maps each membership's base role to a permission set; the access-control issue
replaces this map with tenant-defined roles, bindings and object grants behind
the same ``authorize()``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@dataclass(frozen=True, slots=True)
class Permission:
    name: str
    description: str
    risk: Risk
    # Administrative permissions change who may do what, how people sign in, money or keys.
    # Holding one (from any source) makes a member an administrator for the sign-in policy.
    administrative: bool = False


PERMISSIONS: dict[str, Permission] = {
    p.name: p
    for p in (
        Permission("tenant.view", "See the tenant console and dashboard", Risk.LOW),
        Permission("prompt.create", "Send prompts to enabled models", Risk.MEDIUM),
        Permission("prompt.read", "Read stored prompts and completions", Risk.MEDIUM),
        Permission("dataset.read", "Read datasets", Risk.MEDIUM),
        Permission("dataset.write", "Write to datasets", Risk.HIGH),
        Permission("dataset.manage", "Create, classify and delete datasets", Risk.HIGH),
        Permission("tool.execute", "Run tools", Risk.HIGH),
        Permission("tool.manage", "Register tools and edit their guardrails", Risk.HIGH),
        Permission("model.use", "Use enabled models", Risk.MEDIUM),
        Permission("billing.view", "See usage, invoices and budgets", Risk.LOW),
        Permission("billing.manage", "Change plans, budgets and payment settings", Risk.HIGH, administrative=True),
        Permission("usage.report", "Report model usage, check and reserve budget (runtime API)", Risk.MEDIUM),
        Permission("sso.manage", "Configure SSO connections and sign-in policy", Risk.HIGH, administrative=True),
        Permission("member.manage", "Invite, change and remove members", Risk.HIGH, administrative=True),
        Permission("role.manage", "Create and edit roles and grants", Risk.HIGH, administrative=True),
        Permission("audit.read", "Read and export the audit log", Risk.MEDIUM),
        Permission("apiclient.manage", "Create and revoke API clients", Risk.HIGH, administrative=True),
        Permission("key.manage", "Manage signing keys and provider credentials", Risk.HIGH, administrative=True),
        Permission("breakglass.request", "Request time-boxed elevated access", Risk.MEDIUM),
        Permission("breakglass.approve", "Approve or deny elevation requests", Risk.HIGH, administrative=True),
    )
}

ADMINISTRATIVE_PERMISSIONS: frozenset[str] = frozenset(p.name for p in PERMISSIONS.values() if p.administrative)

# Dataset classifications, least to most sensitive (the values of ``catalog.Dataset.Classification``).
# A role's tenant-wide CLASSIFIED_ACTIONS cover datasets up to the classification the role is
# cleared for; anything above needs an explicit object grant.
CLASSIFICATIONS: tuple[str, ...] = ("public", "internal", "confidential", "restricted")
DEFAULT_CLEARANCE = "confidential"  # everything but restricted
CLASSIFIED_ACTIONS: frozenset[str] = frozenset({"dataset.read", "dataset.write"})


def classification_rank(value: str | None) -> int:
    """Position of ``value`` in CLASSIFICATIONS; an unknown value ranks above everything (deny by default)."""
    try:
        return CLASSIFICATIONS.index(value or "")
    except ValueError:
        return len(CLASSIFICATIONS)


_USE = frozenset({"tenant.view", "prompt.create", "prompt.read", "model.use", "breakglass.request", "usage.report"})


@dataclass(frozen=True, slots=True)
class BuiltinRole:
    key: str
    name: str
    description: str
    permissions: frozenset[str]
    clearance: str = DEFAULT_CLEARANCE


BUILTIN_ROLES: dict[str, BuiltinRole] = {
    r.key: r
    for r in (
        # Owners are cleared for restricted data: someone must be able to hand out the first
        # explicit grant on a restricted dataset without lowering its classification.
        BuiltinRole(
            "owner",
            "Owner",
            "Everything, including billing and ownership.",
            frozenset(PERMISSIONS),
            clearance="restricted",
        ),
        BuiltinRole(
            "admin",
            "Admin",
            "Runs the tenant: members, roles, SSO, tools; not payment settings.",
            frozenset(PERMISSIONS) - {"billing.manage"},
        ),
        BuiltinRole(
            "developer",
            "Developer",
            "Builds AI apps: prompts, models, datasets, tools, API clients.",
            _USE | {"dataset.read", "dataset.write", "tool.execute", "apiclient.manage"},
        ),
        BuiltinRole("analyst", "Analyst", "Uses models over datasets it can read.", _USE | {"dataset.read"}),
        BuiltinRole(
            "billing",
            "Billing",
            "Sees usage and manages budgets and payment.",
            frozenset({"tenant.view", "billing.view", "billing.manage"}),
        ),
        BuiltinRole(
            "auditor",
            "Auditor",
            "Reads the audit log, usage and prompts; changes nothing.",
            frozenset({"tenant.view", "audit.read", "billing.view", "prompt.read"}),
        ),
        BuiltinRole(
            "approver",
            "Approver",
            "Approves or denies break-glass requests.",
            frozenset({"tenant.view", "breakglass.approve", "audit.read"}),
        ),
        BuiltinRole(
            "member",
            "Member",
            "Everyday use: prompts, models, datasets and tools.",
            _USE | {"dataset.read", "tool.execute"},
        ),
        BuiltinRole("viewer", "Viewer", "Read-only access to the console.", frozenset({"tenant.view", "prompt.read"})),
    )
}

# The built-in role every membership carries through ``Membership.role``.
BASE_ROLE_PERMISSIONS: dict[str, frozenset[str]] = {key: role.permissions for key, role in BUILTIN_ROLES.items()}

# Actions that can also be granted on a single object, and the django-guardian
# permission (app label, model, codename) that stores such a grant.
# What a suspended tenant may still do: look, never change or spend.
READ_ONLY_ACTIONS: frozenset[str] = frozenset(
    {"tenant.view", "prompt.read", "dataset.read", "billing.view", "audit.read"}
)

OBJECT_ACTIONS: dict[str, tuple[str, str, str]] = {
    "dataset.read": ("catalog", "dataset", "dataset_read"),
    "dataset.write": ("catalog", "dataset", "dataset_write"),
    "tool.execute": ("catalog", "tool", "tool_execute"),
}
CODENAME_ACTIONS: dict[str, str] = {codename: action for action, (_, _, codename) in OBJECT_ACTIONS.items()}


def require_known(action: str) -> Permission:
    """The catalog entry for ``action``; unknown names are a programming error."""
    try:
        return PERMISSIONS[action]
    except KeyError:
        raise ValueError(f"unknown permission {action!r}") from None
