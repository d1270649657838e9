"""Emergency accounts (#11, item 8): reads and rules. Writes live in ``apps.sso.services.emergency``.

When a tenant's identity provider is down, nobody who must use SSO can get in.
An Owner therefore keeps one or more *emergency accounts*: local accounts of
that tenant alone, with a generated password and a TOTP secret that are shown
once at creation (and again only by rotating them), meant to be sealed in a
safe. Rules, each enforced here or in the services:

- **Who counts as an Owner**: an active membership with the built-in ``owner``
  role that is not itself an emergency account — the same rule as the tenants
  app's owner-only changes and the owner notices (``selectors.owner_recipients``).
  Only Owners create, rotate, disable, delete emergency accounts and
  acknowledge their sign-ins; an emergency account never does (whoever holds
  its credentials must not be able to hide their own use).
- **One tenant only**: the account's user has one membership, in its tenant;
  its login address lives under ``SSO_EMERGENCY_LOGIN_DOMAIN`` (a reserved
  ``.invalid`` name that no tenant can claim, so no IdP can sign it in), and
  a session it opens carries the tenant in its sign-in record: any other
  tenant answers 404 (``session_refuses_tenant``).
- **Never a password alone**: the account is created with a TOTP
  authenticator; a sign-in must finish allauth's second-factor stage with TOTP
  or WebAuthn (recovery codes do not count), or it is refused and audited.
- **Exempt from "SSO required"** (and from the password-session step-up of its
  tenant) for that membership only: ``policy`` asks ``exempt_membership_ids``
  through one annotation of its membership query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet

from apps.sso.models import EmergencyAccount, EmergencySignIn
from apps.tenants.models import Membership, Tenant

# The key of the session's sign-in record (``apps.accounts.services.SESSION_SIGN_IN_KEY``) that
# names the tenant an emergency sign-in is bound to.
SIGN_IN_MARKER = "emergency"
# Second factors that count for an emergency account (allauth's Authenticator types).
FACTORS = ("totp", "webauthn")
CARD_LIMIT = 10
PAGE_SIZE = 50


def login_domain() -> str:
    """The domain of every emergency account's login address (``SSO_EMERGENCY_LOGIN_DOMAIN``)."""
    return str(getattr(settings, "SSO_EMERGENCY_LOGIN_DOMAIN", "emergency.invalid")).strip(".").lower()


def is_login_domain(domain: str) -> bool:
    """Whether ``domain`` is the emergency login domain or under it (no tenant may claim it)."""
    name = domain.strip(".").lower()
    base = login_domain()
    return name == base or name.endswith("." + base)


# --- who is who ----------------------------------------------------------------------------


def emergency_annotation() -> Exists:
    """``Exists`` over memberships: the membership belongs to an enabled emergency account of its tenant."""
    return Exists(
        EmergencyAccount.objects.filter(
            user_id=OuterRef("user_id"), tenant_id=OuterRef("tenant_id"), disabled_at__isnull=True
        )
    )


def exempt_membership_ids(memberships: list[Membership]) -> set[int]:
    """Those of ``memberships`` that are an enabled emergency account's (exempt from "SSO required").

    Reads the ``is_emergency`` annotation ``policy`` adds to its membership query
    (no query); a membership loaded without it is not exempt (fail closed).
    """
    return {m.pk for m in memberships if getattr(m, "is_emergency", False)}


def is_owner(membership: Membership | None) -> bool:
    """Owner for emergency accounts: active, built-in owner role, and not an emergency account itself.

    One query (whether the member is an emergency account) for an owner; none otherwise.
    """
    if membership is None or membership.status != Membership.Status.ACTIVE:
        return False
    if membership.role != Membership.Role.OWNER:
        return False
    return not EmergencyAccount.objects.for_tenant(membership.tenant_id).filter(user_id=membership.user_id).exists()


def account_for_user(user: Any) -> EmergencyAccount | None:
    """The emergency account ``user`` is, with its tenant; ``None`` for everyone else. One query."""
    if user is None or getattr(user, "pk", None) is None:
        return None
    return EmergencyAccount.objects.select_related("tenant", "user").filter(user_id=user.pk).first()


def account_for_login(identifier: str) -> EmergencyAccount | None:
    """The emergency account whose login address is ``identifier`` (case-insensitive), if any."""
    if not identifier or "@" not in identifier or not is_login_domain(identifier.rpartition("@")[2]):
        return None  # not under the emergency domain: no query
    return EmergencyAccount.objects.select_related("tenant", "user").filter(user__email__iexact=identifier).first()


def session_refuses_tenant(sign_in: dict[str, Any] | None, tenant_id: int) -> bool:
    """Whether a session opened by an emergency sign-in is asked into another tenant than its own."""
    if not sign_in or SIGN_IN_MARKER not in sign_in:
        return False
    return sign_in.get(SIGN_IN_MARKER) != tenant_id


def session_is_emergency_of(sign_in: dict[str, Any] | None, tenant_id: int) -> bool:
    """Whether the session is an emergency sign-in (password + second factor) bound to ``tenant_id``."""
    return bool(
        sign_in
        and sign_in.get("method") == "password"
        and sign_in.get("mfa")
        and sign_in.get(SIGN_IN_MARKER) == tenant_id
    )


# --- lists -----------------------------------------------------------------------------------


def account_list(*, tenant: Tenant) -> QuerySet[EmergencyAccount]:
    """The tenant's emergency accounts with their user, membership role and creator, oldest first."""
    role = Membership.objects.filter(tenant_id=OuterRef("tenant_id"), user_id=OuterRef("user_id")).values("role")[:1]
    status = Membership.objects.filter(tenant_id=OuterRef("tenant_id"), user_id=OuterRef("user_id")).values("status")[
        :1
    ]
    return (
        EmergencyAccount.objects.for_tenant(tenant)
        .select_related("user", "created_by")
        .annotate(member_role=role, member_status=status)
        .order_by("created_at", "pk")
    )


def account_get(*, tenant: Tenant, account_id: int) -> EmergencyAccount | None:
    """One emergency account of ``tenant`` (``None`` for another tenant's id: the caller answers 404)."""
    return account_list(tenant=tenant).filter(pk=account_id).first()


def open_sign_ins(*, tenant: Tenant, limit: int = CARD_LIMIT) -> tuple[list[EmergencySignIn], int]:
    """The newest ``limit`` unacknowledged emergency sign-ins of ``tenant`` and how many there are. Two queries."""
    qs = EmergencySignIn.objects.for_tenant(tenant).filter(acknowledged_at__isnull=True)
    rows = list(qs.order_by("-occurred_at", "-pk")[:limit])
    total = len(rows) if len(rows) < limit else qs.count()
    return rows, total


def sign_in_get(*, tenant: Tenant, sign_in_id: int) -> EmergencySignIn | None:
    """One emergency sign-in of ``tenant`` (``None`` for another tenant's id)."""
    return EmergencySignIn.objects.for_tenant(tenant).filter(pk=sign_in_id).first()


def sign_in_history(*, tenant: Tenant) -> QuerySet[EmergencySignIn]:
    """Every emergency sign-in of ``tenant``, newest first (the caller paginates)."""
    return EmergencySignIn.objects.for_tenant(tenant).select_related("acknowledged_by").order_by("-occurred_at", "-pk")


def sign_in_for_notice(*, sign_in_id: int) -> EmergencySignIn | None:
    """A sign-in with its tenant, for the owners' e-mail (the worker's read; no tenant scope to apply)."""
    return EmergencySignIn.objects.select_related("tenant").filter(pk=sign_in_id).first()


def owner_addresses(*, tenant: Tenant) -> list[str]:
    """Addresses of the tenant's Owners (``is_owner``): active users, built-in owner role, no emergency accounts."""
    from apps.accounts.models import User

    emergency_users = EmergencyAccount.objects.for_tenant(tenant).values("user_id")
    addresses = (
        User.objects.filter(
            is_active=True,
            memberships__tenant=tenant,
            memberships__status=Membership.Status.ACTIVE,
            memberships__role=Membership.Role.OWNER,
        )
        .exclude(pk__in=emergency_users)
        .values_list("email", flat=True)
    )
    return sorted({address for address in addresses if address})


@dataclass(frozen=True, slots=True)
class TenantEmergencySummary:
    """One tenant's emergency accounts at a glance, for platform staff."""

    tenant_id: int
    slug: str
    name: str
    accounts: int
    enabled: int
    last_used_at: Any
    unacknowledged: bool  # an emergency sign-in no Owner has acknowledged yet


def tenants_with_accounts(*, query: str = "", limit: int = 200) -> list[TenantEmergencySummary]:
    """Tenants that have emergency accounts, with counts and last use (platform staff; every tenant). One query."""
    qs = EmergencyAccount.objects.all()
    if query:
        qs = qs.filter(Q(tenant__name__icontains=query) | Q(tenant__slug__icontains=query))
    waiting = EmergencySignIn.objects.filter(tenant_id=OuterRef("tenant_id"), acknowledged_at__isnull=True)
    rows = (
        qs.values("tenant_id", "tenant__slug", "tenant__name")
        .annotate(
            accounts=Count("pk"),
            enabled=Count("pk", filter=Q(disabled_at__isnull=True)),
            last_used=Max("last_used_at"),
            waiting=Exists(waiting),
        )
        .order_by("tenant__name", "tenant_id")[:limit]
    )
    return [
        TenantEmergencySummary(
            tenant_id=row["tenant_id"],
            slug=row["tenant__slug"],
            name=row["tenant__name"],
            accounts=row["accounts"],
            enabled=row["enabled"],
            last_used_at=row["last_used"],
            unacknowledged=bool(row["waiting"]),
        )
        for row in rows
    ]
