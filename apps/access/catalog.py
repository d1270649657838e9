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
        Permission("billing.manage", "Change plans, budgets and payment settings", Risk.HIGH),
        Permission("sso.manage", "Configure SSO connections and sign-in policy", Risk.HIGH),
        Permission("member.manage", "Invite, change and remove members", Risk.HIGH),
        Permission("role.manage", "Create and edit roles and grants", Risk.HIGH),
        Permission("audit.read", "Read and export the audit log", Risk.MEDIUM),
        Permission("apiclient.manage", "Create and revoke API clients", Risk.HIGH),
        Permission("key.manage", "Manage signing keys and provider credentials", Risk.HIGH),
        Permission("breakglass.request", "Request time-boxed elevated access", Risk.MEDIUM),
        Permission("breakglass.approve", "Approve or deny elevation requests", Risk.HIGH),
    )
}

_MEMBER = {"tenant.view", "prompt.create", "prompt.read", "dataset.read", "tool.execute", "model.use"}
_MEMBER |= {"breakglass.request"}

BASE_ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "owner": frozenset(PERMISSIONS),
    "admin": frozenset(PERMISSIONS) - {"billing.manage"},
    "member": frozenset(_MEMBER),
    "viewer": frozenset({"tenant.view", "prompt.read"}),
}


def require_known(action: str) -> Permission:
    """The catalog entry for ``action``; unknown names are a programming error."""
    try:
        return PERMISSIONS[action]
    except KeyError:
        raise ValueError(f"unknown permission {action!r}") from None
