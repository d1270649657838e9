"""The tenant boundary of a session: a session opens a tenant's console only if it came in by that tenant's way in.

A session is bound to one sign-in (issue #7, item 4). The session's sign-in
record (``apps.accounts.services``: method, time) and the SSO flow's record
(``SESSION_SSO_KEY``: which connection, of which tenant, for which sign-in)
say how it was established:

- through a tenant's IdP (SAML or OIDC): it opens only *that* tenant's
  console. Any other tenant, for every member (not only admins, not only
  under "SSO required"), asks for its own way in: its IdP, or a password
  sign-in with its MFA policy. Tenant A's IdP vouches for nobody at tenant B.
  The platform's IdP opens no tenant console either.
- with a password (and the second factor every tenant's policy demands, which
  the sign-in itself enforces): it opens every tenant where a password is an
  accepted way in for this person; a tenant whose SSO works and that demands
  it of them (admins, or everyone under "SSO required") sends them to its IdP
  (``apps.sso.policy.tenant_session_refusal``).

Entering another tenant is a *step-up*: the person signs in again with that
tenant's way in, and the new sign-in replaces the old one (the session is
then bound to the new tenant). Nothing is merged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from apps.sso import policy
from apps.sso.models import SSOConnection
from apps.tenants.models import Membership, Tenant

SSO_METHODS = frozenset({"saml", "oidc"})


@dataclass(frozen=True, slots=True)
class StepUp:
    """Why this session may not enter ``tenant``, and the ways in the tenant accepts for this person.

    ``reason`` is stable (audited, shown): ``other_idp`` (the session came from
    another tenant's or the platform's IdP) or ``sso_required`` (a password
    session where the tenant demands its IdP).
    """

    tenant: Tenant
    reason: str
    connection: SSOConnection | None  # the tenant's IdP to offer first, if it has one that works
    password_allowed: bool  # whether a password sign-in (with its MFA policy) is a way in here


def session_tenant(*, sign_in: dict[str, Any] | None, sso: dict[str, Any] | None) -> int | None | bool:
    """The tenant id an SSO session is bound to (``None`` for the platform's IdP); ``False`` if not an SSO session.

    The SSO record counts only if it belongs to the current sign-in (same
    timestamp): a record left over from an earlier sign-in binds nothing.
    """
    if not sign_in or sign_in.get("method") not in SSO_METHODS:
        return False
    if not isinstance(sso, dict) or sso.get("at") != sign_in.get("at"):
        return None  # no record of which IdP: treat as bound to no tenant at all
    tenant_id = sso.get("tenant")
    return tenant_id if isinstance(tenant_id, int) else None


def _password_allowed(membership: Membership) -> bool:
    """A password sign-in is a way into ``membership.tenant`` for this person (by every policy that applies)."""
    if policy.password_sign_in_check(membership.user) is not None:
        return False
    as_password = {"method": "password"}
    return policy.tenant_session_refusal(membership=membership, sign_in=as_password, sso=None) is None


def step_up_for(*, membership: Membership, sign_in: dict[str, Any] | None, sso: dict[str, Any] | None) -> StepUp | None:
    """``None`` if this session may enter ``membership.tenant``; else what the person must do first.

    ``sign_in`` is the session's sign-in record, ``sso`` the SSO flow's. A
    session without a sign-in record was not opened by our sign-in paths
    (tests' ``force_login``) and is left alone.
    """
    if not sign_in:
        return None
    tenant = membership.tenant
    bound = session_tenant(sign_in=sign_in, sso=sso)
    if bound is not False:
        if bound == tenant.pk:
            return None
        return StepUp(
            tenant=tenant,
            reason="other_idp",
            connection=policy.membership_connection(membership),
            password_allowed=_password_allowed(membership),
        )
    connection = policy.tenant_session_refusal(membership=membership, sign_in=sign_in, sso=sso)
    if connection is None:
        return None
    return StepUp(tenant=tenant, reason="sso_required", connection=connection, password_allowed=False)
