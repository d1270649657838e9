"""Named reads for SSO: connections, verified domains, group mappings, SP details.

Every tenant read filters on the tenant passed in; an id from a URL is only
ever looked up inside that tenant, so another tenant's id is "no such row".
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from django.db import connection as db_connection
from django.db.models import QuerySet

from apps.access.models import Role, RoleBinding
from apps.sso import saml
from apps.sso.models import SignInPolicy, SSOConnection, VerifiedDomain
from apps.sso.policy import policy_for
from apps.tenants import selectors as tenant_selectors
from apps.tenants.models import Membership, Tenant
from apps.tenants.selectors import MAX_ID

# The relying party's callback, relative to the site's base URL (the SAML URLs come from apps.sso.saml).
OIDC_CALLBACK_PATH = "/sso/oidc/{public_id}/callback/"
GROUPS_SEEN_LIMIT = 200


def _valid_id(ident: int) -> bool:
    return 0 < ident <= MAX_ID


# --- connections ------------------------------------------------------------------------------


def connection_list(*, tenant: Tenant | None) -> QuerySet[SSOConnection]:
    """The tenant's saved connections, primary first, then by name (one query); empty add-page drafts left out."""
    return SSOConnection.objects.for_tenant(tenant).filter(setup_pending=False).order_by("-is_primary", "name", "pk")


def connection_get(*, tenant: Tenant | None, connection_id: int) -> SSOConnection | None:
    """One saved connection of ``tenant`` by id; ``None`` for another tenant's, an unknown id or an empty draft."""
    if not _valid_id(connection_id):
        return None
    return (
        SSOConnection.objects.for_tenant(tenant)
        .select_related("tenant")
        .filter(pk=connection_id, setup_pending=False)
        .first()
    )


def pending_draft_get(*, tenant: Tenant | None, kind: str, public_id: uuid.UUID, creator: Any) -> SSOConnection | None:
    """The add page's unsaved draft with ``public_id``, if it is ``creator``'s in ``tenant``; else None."""
    return (
        SSOConnection.objects.for_tenant(tenant)
        .filter(public_id=public_id, kind=kind, created_by_id=creator.pk, setup_pending=True)
        .first()
    )


def enabled_tenant_connections(*, query: str = "", limit: int = 200) -> list[SSOConnection]:
    """Enabled connections of every tenant, for the staff page that can switch one off (platform staff only)."""
    qs = SSOConnection.objects.filter(tenant__isnull=False, status=SSOConnection.Status.ENABLED)
    if query:
        qs = qs.filter(tenant__slug__icontains=query.strip()[:100]) | qs.filter(
            tenant__name__icontains=query.strip()[:100]
        )
    return list(qs.select_related("tenant").order_by("tenant__name", "-is_primary", "name", "pk")[:limit])


def tenant_connection_for_staff(*, connection_id: int) -> SSOConnection | None:
    """A tenant's connection by id, for platform staff (never the platform's own)."""
    if not _valid_id(connection_id):
        return None
    return SSOConnection.objects.select_related("tenant").filter(pk=connection_id, tenant__isnull=False).first()


def discovery_connection(*, claim: VerifiedDomain) -> SSOConnection | None:
    """Where a sign-in from the verified domain ``claim`` goes: its routed connection while that is enabled,
    else its tenant's primary enabled connection (#9, item 4). ``None`` if the tenant has no enabled one."""
    enabled = SSOConnection.objects.select_related("tenant").filter(
        tenant_id=claim.tenant_id, status=SSOConnection.Status.ENABLED
    )
    if claim.connection_id is not None:
        routed = enabled.filter(pk=claim.connection_id).first()
        if routed is not None:
            return routed
    return enabled.order_by("-is_primary", "name", "pk").first()


@dataclass(frozen=True, slots=True)
class PasswordLoser:
    """Someone whose password sign-in ends when the tenant's SSO is enabled, and why."""

    email: str
    name: str
    why: str  # "administrator" or "SSO required for everyone"


def password_access_losers(*, tenant: Tenant | None, limit: int = 500) -> list[PasswordLoser]:
    """Who loses password access once ``tenant`` has an enabled connection (#9, item 2).

    Administrators (asked of ``apps.access``: built-in role, bound roles, IdP-group
    roles), and every active member when the policy requires SSO. For the platform:
    every active staff account. Sorted by e-mail; two queries for a tenant.
    """
    from apps.access.decisions import administrator_ids
    from apps.accounts.models import User

    if tenant is None:
        staff = User.objects.filter(is_active=True, is_staff=True).order_by("email")[:limit]
        return [PasswordLoser(u.email, u.get_full_name(), "platform staff") for u in staff]
    memberships = list(
        Membership.objects.filter(tenant=tenant, status=Membership.Status.ACTIVE, user__is_active=True)
        .select_related("user")
        .order_by("user__email")[:limit]
    )
    admins = administrator_ids(memberships)
    everyone = policy_for(tenant).sso_required
    losers = []
    for membership in memberships:
        if membership.pk in admins:
            why = "administrator"
        elif everyone:
            why = "SSO required for everyone"
        else:
            continue
        losers.append(PasswordLoser(membership.user.email, membership.user.get_full_name(), why))
    return losers


def connection_by_public_id(*, public_id: uuid.UUID | str) -> SSOConnection | None:
    """A connection by the public id in SSO URLs (any tenant, any status), with its tenant."""
    try:
        value = public_id if isinstance(public_id, uuid.UUID) else uuid.UUID(str(public_id))
    except ValueError:
        return None
    return SSOConnection.objects.select_related("tenant").filter(public_id=value).first()


def connection_by_id(*, connection_id: int) -> SSOConnection | None:
    """Any connection by database id, with its tenant (background work only: tasks take ids)."""
    if not _valid_id(connection_id):
        return None
    return SSOConnection.objects.select_related("tenant").filter(pk=connection_id).first()


def connection_name_taken(*, tenant: Tenant | None, name: str, exclude_id: int | None = None) -> bool:
    """Whether another connection of ``tenant`` already has ``name`` (case-insensitive)."""
    qs = SSOConnection.objects.for_tenant(tenant).filter(name__iexact=name.strip())
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return qs.exists()


def enabled_connections(*, tenant: Tenant | None) -> QuerySet[SSOConnection]:
    """Connections of ``tenant`` that people can sign in with, the primary first."""
    return (
        SSOConnection.objects.for_tenant(tenant)
        .filter(status=SSOConnection.Status.ENABLED)
        .order_by("-is_primary", "name", "pk")
    )


@dataclass(frozen=True, slots=True)
class SPDetails:
    """What the IdP administrator needs about Bastion as a service provider (or relying party)."""

    entity_id: str
    acs_url: str
    slo_url: str
    metadata_url: str
    oidc_redirect_uri: str


def sp_details(connection: SSOConnection, *, base_url: str) -> SPDetails:
    """The SP/RP URLs of ``connection`` under ``base_url`` (scheme and host, no trailing slash).

    The SAML entity id is the SP metadata URL, as the SAML module publishes it.
    """
    base = base_url.rstrip("/")
    return SPDetails(
        entity_id=saml.sp_entity_id(connection, base_url=base),
        acs_url=saml.acs_url(connection, base_url=base),
        slo_url=saml.sls_url(connection, base_url=base),
        metadata_url=saml.sp_entity_id(connection, base_url=base),
        oidc_redirect_uri=base + OIDC_CALLBACK_PATH.format(public_id=connection.public_id),
    )


def idp_sign_in_origin(connection: SSOConnection) -> str | None:
    """Scheme, host and port of the page the IdP signs people in on (SAML SSO URL, OIDC authorization endpoint).

    The settings pages whose "Test sign-in" form redirects there allow it as a
    Content-Security-Policy ``form-action`` target; None when not configured yet.
    """
    config = connection.config or {}
    if connection.kind == SSOConnection.Kind.SAML:
        url = str(config.get("idp_sso_url") or "")
    else:
        url = str((config.get("discovery") or {}).get("authorization_endpoint") or "")
    parts = urlsplit(url.strip())
    host = parts.netloc.rpartition("@")[2]  # never a user:password@ part in a response header
    # The origin goes into a header as a CSP source: nothing that could end or split a directive.
    if parts.scheme not in ("https", "http") or not host or any(c in host for c in " ;,'\"\r\n\t"):
        return None
    return f"{parts.scheme}://{host}"


# --- certificates -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """A readable summary of an IdP signing certificate (never the key material itself)."""

    subject: str
    not_after: datetime | None
    sha256: str
    expired: bool
    readable: bool = True


def _pem(value: str) -> bytes:
    text = value.strip()
    if "-----BEGIN" not in text:
        body = "".join(text.split())
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        text = "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
    return text.encode()


def certificate_info(pem: str) -> CertificateInfo:
    """Subject, expiry and SHA-256 fingerprint of a PEM (or bare base64) certificate.

    An unreadable value gives ``readable=False`` rather than an exception: the
    settings page must still render whatever is stored.
    """
    try:
        cert = x509.load_pem_x509_certificate(_pem(pem))
    except ValueError:
        digest = hashlib.sha256(pem.encode()).hexdigest()
        return CertificateInfo(subject="(unreadable)", not_after=None, sha256=digest, expired=False, readable=False)
    fingerprint = cert.fingerprint(hashes.SHA256()).hex()
    not_after = cert.not_valid_after_utc
    return CertificateInfo(
        subject=cert.subject.rfc4514_string() or "(no subject)",
        not_after=not_after,
        sha256=":".join(fingerprint[i : i + 2] for i in range(0, len(fingerprint), 2)).upper(),
        expired=not_after < datetime.now(UTC),
    )


# --- verified domains -------------------------------------------------------------------------


def domain_list(*, tenant: Tenant | None) -> QuerySet[VerifiedDomain]:
    """The tenant's claimed domains (verified or not), with who verified them."""
    return VerifiedDomain.objects.for_tenant(tenant).select_related("verified_by").order_by("domain")


def domain_get(*, tenant: Tenant | None, domain_id: int) -> VerifiedDomain | None:
    """One domain claim of ``tenant``; ``None`` for another tenant's or an unknown id."""
    if not _valid_id(domain_id):
        return None
    return VerifiedDomain.objects.for_tenant(tenant).filter(pk=domain_id).first()


def domain_get_any(*, domain_id: int) -> VerifiedDomain | None:
    """A domain claim of any tenant (platform staff only), with its tenant."""
    if not _valid_id(domain_id):
        return None
    return VerifiedDomain.objects.select_related("tenant", "verified_by").filter(pk=domain_id).first()


def domain_claims_for_staff(*, pending_only: bool = True) -> QuerySet[VerifiedDomain]:
    """Domain claims across tenants for the staff verification page, oldest first."""
    qs = VerifiedDomain.objects.select_related("tenant", "verified_by")
    if pending_only:
        qs = qs.filter(verified_at__isnull=True)
    return qs.order_by("created_at", "pk")


def verified_domain_for(*, domain: str) -> VerifiedDomain | None:
    """The verified claim on exactly ``domain`` (already normalised), with its tenant."""
    return VerifiedDomain.objects.select_related("tenant").filter(domain=domain, verified_at__isnull=False).first()


def domain_is_verified_for(*, tenant: Tenant | None, domain: str) -> bool:
    """Whether ``domain`` is a verified domain of ``tenant`` (``None``: of the platform)."""
    return VerifiedDomain.objects.for_tenant(tenant).filter(domain=domain, verified_at__isnull=False).exists()


# --- policy and groups ------------------------------------------------------------------------


def policy_get(*, tenant: Tenant | None) -> SignInPolicy:
    """The tenant's sign-in policy, or an unsaved one with the defaults."""
    return policy_for(tenant)


def group_bindings(*, tenant: Tenant) -> list[RoleBinding]:
    """Every IdP-group → role binding of ``tenant``, by group then role (one query)."""
    return list(
        RoleBinding.objects.for_tenant(tenant)
        .exclude(idp_group="")
        .select_related("role")
        .order_by("idp_group", "role__name")
    )


def roles_for_groups(*, tenant: Tenant, groups: list[str] | tuple[str, ...]) -> dict[str, list[str]]:
    """For each of ``groups``, the names of the roles bound to it in ``tenant`` (one query)."""
    result: dict[str, list[str]] = {group: [] for group in groups}
    if not groups:
        return result
    rows = (
        RoleBinding.objects.for_tenant(tenant)
        .filter(idp_group__in=list(groups))
        .values_list("idp_group", "role__name")
        .order_by("role__name")
    )
    for group, role_name in rows:
        result.setdefault(group, []).append(role_name)
    return result


def roles_for_mapping(*, tenant: Tenant) -> QuerySet[Role]:
    """The tenant's roles, for links to where group bindings are managed."""
    return Role.objects.for_tenant(tenant).order_by("-builtin", "name")


def groups_seen(*, tenant: Tenant, limit: int = GROUPS_SEEN_LIMIT) -> list[tuple[str, int]]:
    """Groups the IdP asserted at members' last sign-ins, with how many members carry each.

    One aggregate query over ``Membership.idp_groups`` of the tenant, most
    common first, at most ``limit`` rows.
    """
    table = Membership._meta.db_table
    sql = (
        f"SELECT g, count(*) FROM {table}, unnest(idp_groups) AS g "  # constant table name, bound parameters
        "WHERE tenant_id = %s GROUP BY g ORDER BY count(*) DESC, g LIMIT %s"
    )
    with db_connection.cursor() as cursor:
        cursor.execute(sql, [tenant.pk, limit])
        return [(str(group), int(count)) for group, count in cursor.fetchall()]


def was_removed(*, tenant: Tenant, user: Any) -> bool:
    """Whether an administrator removed ``user`` from ``tenant`` and has not invited them again."""
    return tenant_selectors.membership_was_removed(tenant=tenant, user=user)


def notice_recipients(*, tenant: Tenant | None) -> list[str]:
    """Who hears about a connection's IdP problems: the tenant's active owners and admins (platform: active staff).

    Addresses, de-duplicated and sorted (one query).
    """
    from apps.accounts.models import User

    if tenant is None:
        qs = User.objects.filter(is_active=True, is_staff=True)
    else:
        qs = User.objects.filter(
            is_active=True,
            memberships__tenant=tenant,
            memberships__status=Membership.Status.ACTIVE,
            memberships__role__in=[Membership.Role.OWNER, Membership.Role.ADMIN],
        )
    return sorted({email for email in qs.values_list("email", flat=True) if email})


def owner_recipients(*, tenant: Tenant | None) -> list[str]:
    """Every active Owner of ``tenant`` (active platform staff for the platform): who hears of trust changes.

    Owners, not admins: an admin with ``sso.manage`` is the one who could make
    the change, so the notice goes to the people above them. Sorted addresses.
    """
    from apps.accounts.models import User

    if tenant is None:
        qs = User.objects.filter(is_active=True, is_staff=True)
    else:
        qs = User.objects.filter(
            is_active=True,
            memberships__tenant=tenant,
            memberships__status=Membership.Status.ACTIVE,
            memberships__role=Membership.Role.OWNER,
        )
    return sorted({email for email in qs.values_list("email", flat=True) if email})


def saml_connection_ids_to_refresh() -> list[int]:
    """Ids of the SAML connections that have a metadata URL and are not disabled (all tenants: the scheduler's)."""
    return list(
        SSOConnection.objects.filter(kind=SSOConnection.Kind.SAML, config__has_key="metadata_url")
        .exclude(status=SSOConnection.Status.DISABLED)
        .exclude(config__metadata_url="")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def connection_snapshot(connection: SSOConnection) -> dict[str, Any]:
    """The audit-safe view of a connection: settings, certificate fingerprints, never the secret or raw XML."""
    config = dict(connection.config or {})
    safe: dict[str, Any] = {}
    for key in (
        "source",
        "idp_entity_id",
        "idp_sso_url",
        "idp_slo_url",
        "metadata_url",
        "want_assertion_signed",
        "allow_idp_initiated",
        "issuer",
        "client_id",
        "scopes",
        "mfa_acr_values",
        "token_endpoint_auth_method",
    ):
        if key in config:
            safe[key] = config[key]
    certs = config.get("idp_x509_certs") or []
    if certs:
        safe["idp_certificates"] = [certificate_info(c).sha256 for c in certs]
    return {
        "name": connection.name,
        "kind": connection.kind,
        "status": connection.status,
        "config": safe,
        "attribute_mapping": dict(connection.attribute_mapping or {}),
        "client_auth": "stored" if connection.secret_encrypted else "none",
    }


# --- domain verification (#9, item 3) ----------------------------------------------------------


def pending_domain_ids() -> list[int]:
    """Ids of every pending (unverified) domain claim, oldest check first (all tenants: the scheduler's)."""
    return list(
        VerifiedDomain.objects.filter(verified_at__isnull=True)
        .order_by("last_checked_at", "pk")
        .values_list("pk", flat=True)
    )


def tenant_for_notice(*, tenant_id: int | None) -> Tenant | None:
    """The tenant a notice is about (None for the platform or a tenant that no longer exists)."""
    if tenant_id is None:
        return None
    return Tenant.objects.filter(pk=tenant_id).first()


def active_user_email(*, user_id: int | None) -> str:
    """The e-mail address of an active user, '' for None, an unknown or a deactivated user."""
    from apps.accounts.models import User

    if user_id is None:
        return ""
    return User.objects.filter(pk=user_id, is_active=True).values_list("email", flat=True).first() or ""
