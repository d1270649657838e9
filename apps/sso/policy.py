"""Sign-in policy rules: who may use a password, who must use MFA, how long a session lives.

Read by the password sign-in (apps.accounts: adapter, middleware) and by the
SSO flow (apps.sso.services). The rules are plain functions over a few small
reads; ``policy_update`` is the one write.

- Admins never use local passwords (DESIGN invariant 4): platform staff once a
  platform SSO connection is enabled, owners and admins of any tenant whose SSO
  works, and every member of a tenant that requires SSO (once it works) are
  refused a password sign-in with a message that names the way in.
- A password sign-in that remains (e.g. the bootstrap owner before SSO exists)
  needs MFA: staff, owners and admins always; members when a tenant of theirs
  says ``mfa_required_local`` (the default).
- A session lives no longer than the strictest policy of the user's tenants.
- An emergency account (``apps.sso.emergency``) is exempt from the first rule
  and from its tenant's step-up for password sessions, for that membership
  only; it always needs its second factor (TOTP or WebAuthn).

"SSO works" means the tenant has an ``SSOConnection`` with status enabled; a
draft or tested connection never locks anyone out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import idna
from django.db import transaction
from django.utils import timezone

from apps.access.decisions import administrator_ids
from apps.audit.services import Actor, record
from apps.sso import emergency
from apps.sso.models import SignInPolicy, SSOConnection, VerifiedDomain
from apps.tenants.models import Membership, Tenant

# Built-in roles that hold administrative permissions; kept for display hints only. Every rule below
# asks apps.access (``is_admin``), which counts bindings and IdP-group roles too.
ADMIN_ROLES = frozenset({Membership.Role.OWNER.value, Membership.Role.ADMIN.value})
SSO_START_PATH = "/sso/start/{public_id}/"
POLICY_FIELDS = (
    "sso_required",
    "mfa_required_local",
    "mfa_required_admin_sso",
    "session_absolute_minutes",
    "session_idle_minutes",
)
ABSOLUTE_MINUTES_RANGE = (5, 7 * 24 * 60)  # mirrors the table's check constraints
IDLE_MINUTES_RANGE = (1, 24 * 60)
# Where ``membership_connection`` remembers its answer on the Membership object (for one request).
CONNECTION_MEMO = "_bastion_working_sso"
# Session keys the SSO flow writes (apps.sso.services.signin; repeated here: services import this module).
SESSION_SSO_KEY = "bastion_sso"
PENDING_LINK_KEY = "bastion_sso_pending_link"
# The primary connection first (#9, item 4); by name only while none is marked (never, after primary_ensure).
PRIMARY_FIRST = ("-is_primary", "name", "pk")


class PolicyError(ValueError):
    """A policy change the rules refuse; the message is for the person who asked."""


@dataclass(frozen=True, slots=True)
class PasswordRefusal:
    """Why a user may not sign in with a password, and the way in instead.

    ``rule`` is stable (audited): ``staff`` (platform SSO enabled), ``admin``
    (owner/admin of a tenant whose SSO works) or ``member`` (tenant requires SSO).
    """

    rule: str
    tenant: Tenant | None
    connection: SSOConnection
    explanation: str  # why a password is refused, without the way in

    @property
    def start_url(self) -> str:
        return sso_start_url(self.connection)

    @property
    def message(self) -> str:
        """The explanation and the way in: "… Sign in with <connection>: /sso/start/<id>/"."""
        return f"{self.explanation} Sign in with {self.connection.name}: {self.start_url}"


def sso_start_url(connection: SSOConnection) -> str:
    """Where a sign-in through ``connection`` starts (built by the SSO flow)."""
    return SSO_START_PATH.format(public_id=connection.public_id)


# --- selectors ---------------------------------------------------------------------------


def policy_for(tenant: Tenant | None) -> SignInPolicy:
    """The sign-in policy of ``tenant`` (the platform's for ``None``); model defaults if no row exists.

    The default instance is unsaved: use ``policy_update`` to store a change.
    """
    row = SignInPolicy.objects.filter(tenant=tenant).first()
    return row if row is not None else SignInPolicy(tenant=tenant)


def _policies_for(tenant_ids: set[int]) -> dict[int, SignInPolicy]:
    """Policies of several tenants in one query, with defaults for tenants without a row."""
    found = {p.tenant_id: p for p in SignInPolicy.objects.filter(tenant_id__in=tenant_ids)}
    return {tenant_id: found.get(tenant_id) or SignInPolicy(tenant_id=tenant_id) for tenant_id in tenant_ids}


def working_connection(tenant: Tenant | None) -> SSOConnection | None:
    """The enabled SSO connection of ``tenant`` (the platform's for ``None``) to offer: its primary one."""
    qs = SSOConnection.objects.for_tenant(tenant).filter(status=SSOConnection.Status.ENABLED)
    return qs.order_by(*PRIMARY_FIRST).first()


def membership_connection(membership: Membership) -> SSOConnection | None:
    """``working_connection`` of the membership's tenant, remembered on the membership object.

    The membership ``tenant_view`` resolved lives for one request and already
    carries that request's permission memo: the tenant entry's SSO boundary
    looks the connection up and the console's "set up SSO" banner reuses it,
    one query per request.
    """
    if CONNECTION_MEMO not in membership.__dict__:
        membership.__dict__[CONNECTION_MEMO] = (
            SSOConnection.objects.filter(tenant_id=membership.tenant_id, status=SSOConnection.Status.ENABLED)
            .order_by(*PRIMARY_FIRST)
            .first()
        )
    return membership.__dict__[CONNECTION_MEMO]


def tenant_has_working_sso(tenant: Tenant | None) -> bool:
    """True if ``tenant`` (the platform for ``None``) has an enabled SSO connection."""
    qs = SSOConnection.objects.filter(status=SSOConnection.Status.ENABLED)
    qs = qs.filter(tenant__isnull=True) if tenant is None else qs.filter(tenant=tenant)
    return qs.exists()


def _active_memberships(user: Any) -> list[Membership]:
    """The user's active memberships with their tenants, in a stable order (tenant name)."""
    if user is None or not getattr(user, "is_authenticated", False) or user.pk is None:
        return []
    return list(
        Membership.objects.filter(user_id=user.pk, status=Membership.Status.ACTIVE)
        .select_related("tenant")
        # Emergency accounts (#11, item 8) are exempt from "SSO required" there: in the same query.
        .annotate(is_emergency=emergency.emergency_annotation())
        .order_by("tenant__name", "tenant_id")
    )


# --- rules -------------------------------------------------------------------------------


def is_admin(membership: Membership) -> bool:
    """An administrator for the sign-in policy: holds an administrative permission from any source.

    Asked of ``apps.access`` (built-in role, roles bound to the member or to one of
    their IdP groups), never read from the role name. At most one query.
    """
    return membership.pk in administrator_ids([membership])


def password_sign_in_check(user: Any) -> PasswordRefusal | None:
    """Whether ``user`` is refused a password sign-in; ``None`` if a password is allowed.

    At most five queries (memberships, policies, enabled connections, the
    platform connection for staff, and the role bindings that may make a
    member an admin), whatever the number of tenants. The
    first refusal wins: staff, then tenants by name.
    """
    if getattr(user, "is_staff", False):
        platform_connection = working_connection(None)
        if platform_connection is not None:
            return PasswordRefusal(
                rule="staff",
                tenant=None,
                connection=platform_connection,
                explanation="Platform staff sign in through single sign-on, not with a password.",
            )
    memberships = _active_memberships(user)
    if not memberships:
        return None
    tenant_ids = {m.tenant_id for m in memberships}
    connections: dict[int, SSOConnection] = {}
    for connection in SSOConnection.objects.filter(
        tenant_id__in=tenant_ids, status=SSOConnection.Status.ENABLED
    ).order_by(*PRIMARY_FIRST):
        connections.setdefault(connection.tenant_id, connection)  # type: ignore[arg-type]
    if not connections:
        return None
    policies = _policies_for(set(connections))
    admins = administrator_ids(m for m in memberships if m.tenant_id in connections)
    exempt = emergency.exempt_membership_ids(memberships)
    for membership in memberships:
        connection = connections.get(membership.tenant_id)
        if connection is None or membership.pk in exempt:
            continue
        tenant = membership.tenant
        if membership.pk in admins:
            return PasswordRefusal(
                rule="admin",
                tenant=tenant,
                connection=connection,
                explanation=(
                    f"You are an administrator of {tenant.name}, which uses single sign-on: "
                    "administrators may not sign in with a password."
                ),
            )
        if policies[membership.tenant_id].sso_required:
            return PasswordRefusal(
                rule="member",
                tenant=tenant,
                connection=connection,
                explanation=f"{tenant.name} requires single sign-on for every member.",
            )
    return None


def password_sign_in_refusal(user: Any) -> str | None:
    """A message naming the right way in if ``user`` may not sign in with a password, else ``None``."""
    refusal = password_sign_in_check(user)
    return refusal.message if refusal is not None else None


def mfa_required_for(user: Any) -> bool:
    """Whether a password sign-in of ``user`` must use a second factor (enrolment is forced first).

    True for platform staff, for owners and admins of any tenant (the bootstrap
    owner of a tenant without SSO may use a password only with MFA), and for
    members of any tenant whose policy has ``mfa_required_local`` (the default).
    SSO sign-ins are governed by ``sso_mfa_required_for`` instead.
    """
    if user is None or not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff:
        return True
    memberships = _active_memberships(user)
    if administrator_ids(memberships):
        return True
    if not memberships:
        return False
    return any(p.mfa_required_local for p in _policies_for({m.tenant_id for m in memberships}).values())


def sso_mfa_required_for(user: Any, *, tenant: Tenant | None) -> bool:
    """Whether an SSO sign-in of ``user`` through a connection of ``tenant`` must carry IdP-asserted MFA.

    True when the policy has ``mfa_required_admin_sso`` and the user is an
    owner/admin of ``tenant`` (or platform staff, for the platform's connection).
    """
    if tenant is None:
        return bool(getattr(user, "is_staff", False)) and policy_for(None).mfa_required_admin_sso
    membership = (
        Membership.objects.filter(tenant=tenant, user_id=user.pk, status=Membership.Status.ACTIVE)
        .select_related("tenant")
        .first()
    )
    return membership is not None and is_admin(membership) and policy_for(tenant).mfa_required_admin_sso


def session_limits_for(user: Any) -> tuple[int, int]:
    """``(absolute_minutes, idle_minutes)`` for the user's sessions: the strictest of their tenants.

    Platform staff also fall under the platform's policy. With no policy
    rows the model defaults apply (8 hours absolute, 30 minutes idle).
    """
    default = SignInPolicy()
    policies = list(_policies_for({m.tenant_id for m in _active_memberships(user)}).values())
    if getattr(user, "is_staff", False):
        policies.append(policy_for(None))
    if not policies:
        return default.session_absolute_minutes, default.session_idle_minutes
    return (
        min(p.session_absolute_minutes for p in policies),
        min(p.session_idle_minutes for p in policies),
    )


@dataclass(frozen=True, slots=True)
class SessionRefusal:
    """Why the sign-in policy no longer accepts an open session.

    ``reason`` is stable (audited): ``sso_required`` (a password session of someone
    who must use SSO now) or ``idp_mfa_required`` (an admin's SSO session without
    IdP-asserted MFA while the policy requires it).
    """

    reason: str
    message: str
    tenant_id: int | None
    detail: dict[str, Any]


def session_refusal(
    user: Any, *, sign_in: dict[str, Any] | None, sso: dict[str, Any] | None, pending_link: bool = False
) -> SessionRefusal | None:
    """Whether an open session of ``user`` breaks the current policy; ``None`` if it may go on.

    The one rule for open sessions (#9, item 6): the session middleware applies it on
    every policy re-check, and ``sessions_enforce_policy`` applies it to every open
    session right after a policy or connection change. ``sign_in`` is the session's
    sign-in marker, ``sso`` the SSO flow's connection record; ``pending_link`` is true
    for a password sign-in that confirms a pending SSO link (it lives until the link
    is made). A session without a marker (not opened by our sign-in paths) is left alone.
    """
    if not sign_in:
        return None
    method = sign_in.get("method")
    if method == "password":
        refusal = password_sign_in_check(user)
        if refusal is None or pending_link:
            return None
        return SessionRefusal(
            reason="sso_required",
            message=refusal.message,
            tenant_id=refusal.tenant.pk if refusal.tenant else None,
            detail={"rule": refusal.rule, "tenant": refusal.tenant.slug if refusal.tenant else ""},
        )
    if method in {"saml", "oidc"} and not sign_in.get("mfa") and isinstance(sso, dict) and "tenant" in sso:
        tenant_id = sso.get("tenant")
        tenant = Tenant.objects.filter(pk=tenant_id).first() if tenant_id is not None else None
        if tenant_id is not None and tenant is None:
            return None
        if sso_mfa_required_for(user, tenant=tenant):
            return SessionRefusal(
                reason="idp_mfa_required",
                message=(
                    "Your session ended: administrators must now use multi-factor authentication at the "
                    "identity provider. Sign in again and complete it there."
                ),
                tenant_id=tenant_id,
                detail={"tenant": tenant.slug if tenant else ""},
            )
    return None


# --- writes ------------------------------------------------------------------------------


def _snapshot(policy: SignInPolicy) -> dict[str, Any]:
    return {name: getattr(policy, name) for name in POLICY_FIELDS}


def _validate(values: dict[str, Any]) -> None:
    low, high = ABSOLUTE_MINUTES_RANGE
    if not low <= values["session_absolute_minutes"] <= high:
        raise PolicyError(f"A session must last between {low} minutes and {high // (24 * 60)} days.")
    low, high = IDLE_MINUTES_RANGE
    if not low <= values["session_idle_minutes"] <= high:
        raise PolicyError(f"The idle timeout must be between {low} minute and {high // 60} hours.")
    if values["session_idle_minutes"] > values["session_absolute_minutes"]:
        raise PolicyError("The idle timeout cannot be longer than the session lifetime.")


@transaction.atomic
def policy_update(*, tenant: Tenant | None, actor: Any = None, **changes: Any) -> SignInPolicy:
    """Change the sign-in policy of ``tenant`` (the platform's for ``None``); audited before/after.

    ``changes`` are fields of ``SignInPolicy`` (see ``POLICY_FIELDS``). The caller
    has checked the permission (tenant admin for a tenant, staff for the
    platform). Raises ``PolicyError`` for an unknown field or out-of-range
    minutes; nothing is written then. Returns the stored policy; no event is
    recorded when nothing changed.
    """
    unknown = set(changes) - set(POLICY_FIELDS)
    if unknown:
        raise PolicyError(f"Unknown policy setting: {', '.join(sorted(unknown))}.")
    policy, _created = SignInPolicy.objects.select_for_update().get_or_create(tenant=tenant)
    before = _snapshot(policy)
    after = {**before, **{k: v for k, v in changes.items() if v is not None}}
    _validate(after)
    if after == before:
        return policy
    for name, value in after.items():
        setattr(policy, name, value)
    policy.updated_at = timezone.now()
    policy.save()
    record(
        "sso.policy_update",
        tenant=tenant,
        actor=Actor.for_user(actor) if actor is not None else Actor.system(),
        target=policy,
        metadata={
            "before": before,
            "after": after,
            "changed": sorted(name for name in POLICY_FIELDS if before[name] != after[name]),
        },
    )
    # A stricter policy applies to sessions already open, not only to the next sign-in (#9, item 6).
    sessions_enforce_policy(tenant=tenant, actor=actor, cause="sso.policy_update")
    return policy


def _open_sessions(tenant: Tenant | None) -> list[Any]:
    """Tracked sessions (allauth.usersessions) of the tenant's active members, or of platform staff for None."""
    from allauth.usersessions.models import UserSession

    if tenant is None:
        users = {"user__is_staff": True}
    else:
        users = {"user__memberships__tenant": tenant, "user__memberships__status": Membership.Status.ACTIVE}
    return list(UserSession.objects.filter(**users).select_related("user").distinct().order_by("pk"))


def sessions_enforce_policy(*, tenant: Tenant | None, actor: Any = None, cause: str) -> int:
    """End every open session of the tenant's members that the policy now refuses; audited per session.

    Called inside the transaction of a change that can tighten the policy (a policy
    save, enabling a connection), so it sees the new state and a rollback undoes
    it too (sessions live in the database). Each session is judged by
    ``session_refusal``, the rule the session middleware applies, so nothing is
    ended here that the middleware would accept. Returns how many ended.
    """
    from apps.accounts import services as account_services

    ended = 0
    for user_session in _open_sessions(tenant):
        data = _session_data(user_session.session_key)
        if data is None:
            continue
        refusal = session_refusal(
            user_session.user,
            sign_in=data.get(account_services.SESSION_SIGN_IN_KEY),
            sso=data.get(SESSION_SSO_KEY),
            pending_link=bool(data.get(PENDING_LINK_KEY)),
        )
        if refusal is None:
            continue
        record(
            "auth.session_expired",
            tenant=tenant,
            actor=Actor.for_user(actor) if actor is not None else Actor.system(),
            target=user_session.user,
            metadata={"reason": refusal.reason, "cause": cause, "session": user_session.pk, **refusal.detail},
        )
        user_session.end()
        ended += 1
    return ended


def _session_data(session_key: str) -> dict[str, Any] | None:
    from importlib import import_module

    from django.conf import settings

    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    if not store.exists(session_key):
        return None
    return dict(store.load())


def tenant_session_refusal(*, membership: Membership, sign_in: dict | None, sso: dict | None) -> SSOConnection | None:
    """The tenant's own connection if this session may not enter the tenant, else ``None``.

    A tenant whose SSO works demands it from its admins (and from everyone
    under "SSO required"): a session counts only if it was established through
    one of *this* tenant's connections. A session from another tenant's IdP
    (the same person may belong to both) or a password session is sent to
    this tenant's IdP instead. ``sign_in`` is the session's sign-in marker,
    ``sso`` the connection record the SSO flow keeps in the session.
    """
    connection = membership_connection(membership)
    if connection is None:
        return None
    if not is_admin(membership) and not policy_for(membership.tenant).sso_required:
        return None
    if not sign_in:
        return None  # no sign-in marker: not a session our sign-in paths opened (tests' force_login)
    if sign_in.get("method") in {"saml", "oidc"} and (sso or {}).get("tenant") == membership.tenant_id:
        return None
    if emergency.session_is_emergency_of(sign_in, membership.tenant_id):
        return None  # an emergency account's own sign-in (password and second factor), bound to this tenant
    return connection


# --- invitations (#9, item 5) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InviteWarning:
    """Why a person invited with this address and role could never sign in, and what they would need.

    ``rule`` is ``admin`` (admins sign in only through SSO once it works) or
    ``member`` (the tenant requires SSO for everyone).
    """

    rule: str
    problem: str
    needs: str

    @property
    def message(self) -> str:
        return f"{self.problem} {self.needs}"


def _address_domain(email: str) -> str:
    """The IDNA (ASCII) domain of ``email`` as verified domains are stored, '' if it has none."""
    domain = (email or "").rpartition("@")[2].strip().lower().rstrip(".")
    try:
        return idna.encode(domain, uts46=True).decode("ascii") if domain else ""
    except (idna.IDNAError, UnicodeError):
        return ""


def invite_sign_in_warning(*, tenant: Tenant, email: str, role: str) -> InviteWarning | None:
    """Would someone invited to ``tenant`` as ``role`` with ``email`` be able to sign in? ``None`` if so.

    The same rules as sign-in: once the tenant's SSO works, owners and admins
    (and, with "SSO required", everyone) are refused a password; and the
    tenant's identity provider signs in a new person only when the address is
    on one of the tenant's *verified* domains. An address outside them in an
    SSO-only role makes a member who can never get in. Two queries at most.
    """
    connection = working_connection(tenant)
    if connection is None:
        return None
    admin_role = role in ADMIN_ROLES
    if not admin_role and not policy_for(tenant).sso_required:
        return None
    verified = sorted(
        VerifiedDomain.objects.for_tenant(tenant).filter(verified_at__isnull=False).values_list("domain", flat=True)
    )
    if _address_domain(email) in verified:
        return None
    domains = ", ".join(verified[:5]) if verified else ""
    if admin_role:
        problem = (
            f"{email} could not sign in: administrators of {tenant.name} sign in only through "
            f"{connection.name}, which signs in addresses on {domains or 'a verified domain (there is none yet)'} only."
        )
        exception = "or invite them as a member or viewer (who may use a password) and raise the role later."
        if policy_for(tenant).sso_required:
            exception = "or ask an owner to make an exception (turn off “Require SSO for every member”)."
        rule = "admin"
    else:
        problem = (
            f"{email} could not sign in: {tenant.name} requires single sign-on for every member through "
            f"{connection.name}, which signs in addresses on {domains or 'a verified domain (there is none yet)'} only."
        )
        exception = "or ask an owner to make an exception (turn off “Require SSO for every member”)."
        rule = "member"
    where = f"an address on {domains}" if domains else "an address on a verified domain"
    needs = f"They need an account at {connection.name} with {where} (invite that address instead), {exception}"
    return InviteWarning(rule=rule, problem=problem, needs=needs)
