"""Shared pieces of the SSO services: input limits and patterns, ``SSOInputError``, and small private helpers.

What more than one services module needs (``_audit_actor`` for audit events, the
connection row lock, group cleaning, the tenant's sign-in policy) lives here
so the topic modules do not reach into one another for private helpers.
"""

from __future__ import annotations

import re
from typing import Any

from apps.audit.services import Actor
from apps.sso.models import SignInPolicy, SSOConnection
from apps.sso.policy import policy_for
from apps.sso.types import SSOConfigError
from apps.tenants.models import Tenant

NAME_MAX = 100
ENTITY_ID_MAX = 1024
URL_MAX = 2048
CLIENT_ID_MAX = 255
CLIENT_SECRET_MAX = 2048
SCOPES_MAX = 20
ATTRIBUTE_NAME_MAX = 255
SUBJECT_MAX = 255
GROUP_NAME_MAX = 200  # RoleBinding.idp_group: a longer name can never match a binding
GROUPS_MAX = 500
DOMAIN_MAX = 253

SCOPE_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]{1,100}$")  # RFC 6749 scope-token
_LABEL_RE = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class SSOInputError(SSOConfigError):
    """A configuration the rules refuse; ``field`` names the form field it is about ('' for the whole form)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _audit_actor(actor: Any) -> Actor:
    return Actor.for_user(actor) if actor is not None else Actor.system()


def _lock_connection(connection: SSOConnection) -> SSOConnection:
    locked = (
        # of=self: the platform's connection has no tenant, and the outer join cannot be locked.
        SSOConnection.objects.select_for_update(of=("self",))
        .select_related("tenant")
        .filter(pk=connection.pk, tenant_id=connection.tenant_id)
        .first()
    )
    if locked is None:
        raise SSOInputError("This connection no longer exists.")
    return locked


def _clean_groups(groups: tuple[str, ...] | list[str]) -> list[str]:
    """Groups as stored on the membership: trimmed, de-duplicated, in order, bounded in length and number."""
    cleaned: list[str] = []
    seen: set[str] = set()
    for group in groups or ():
        if not isinstance(group, str):
            continue
        name = group.strip()
        if not name or len(name) > GROUP_NAME_MAX or _CONTROL_RE.search(name) or name in seen:
            continue
        seen.add(name)
        cleaned.append(name)
        if len(cleaned) >= GROUPS_MAX:
            break
    return cleaned


def _policy(tenant: Tenant) -> SignInPolicy:
    return policy_for(tenant)
