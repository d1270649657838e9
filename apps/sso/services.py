"""SSO writes: connections, verified domains, sign-in completion (JIT provisioning), test sign-ins.

Every write is keyword-only, atomic and audited with before/after; the OIDC
client secret is stored encrypted (``apps.sso.crypto``) and never enters an
audit event, a log line or a page. Network work (metadata download, OIDC
discovery) happens *before* the transaction opens, so a slow IdP never holds
a row lock, and a configuration that fails validation writes nothing: the
last working configuration stays as it was.

Tenant boundary of sign-in: a connection belongs to one tenant and only ever
creates or activates a membership in that tenant. An identity it has never
seen is linked to a user (existing or new) only when the asserted e-mail's
domain is a *verified* domain of that same tenant, so tenant A's IdP cannot
take over an account whose address lives under tenant B's domain. Platform
staff accounts never sign in through a tenant's IdP.

Refusals the caller may show raise ``SSOInputError`` (configuration, with the
form field it is about) or ``SSOError`` (sign-in, with a stable code that is
audited).
"""

from __future__ import annotations

import functools
import logging
import re
import secrets
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import idna
from django.conf import settings
from django.contrib.auth import login as auth_login
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.access import permsets
from apps.accounts import services as account_services
from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record
from apps.sso import crypto, metadata, oidc, saml, selectors
from apps.sso.models import ExternalIdentity, SignInPolicy, SSOConnection, VerifiedDomain
from apps.sso.policy import policy_for
from apps.sso.types import Assertion, SSOConfigError, SSOError
from apps.tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
SESSION_SSO_KEY = "bastion_sso"

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

# Roles (and permissions from group roles) that make a member an "admin" for the admin MFA rule.
ADMIN_ROLES = frozenset({Membership.Role.OWNER, Membership.Role.ADMIN})
ADMIN_PERMISSIONS = frozenset({"sso.manage", "member.manage", "role.manage"})

# Shared mailbox providers: nobody can own these for a tenant.
PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "web.de",
        "mail.com",
        "yandex.ru",
        "yandex.com",
        "qq.com",
        "163.com",
        "zoho.com",
        "fastmail.com",
        "hey.com",
    }
)

# Sign-in refusals by our own rules (audited as "denied"); every other code is a protocol failure.
DENIAL_CODES = frozenset(
    {
        "domain",
        "staff",
        "inactive",
        "membership_disabled",
        "membership_removed",
        "tenant_suspended",
        "mfa_required",
        "connection_disabled",
        "platform",
    }
)

MAPPING_FIELDS = ("email", "first_name", "last_name", "groups")
SAML_SOURCES = ("metadata_xml", "metadata_url", "manual")
DEFAULT_OIDC_SCOPES = ("openid", "email", "profile")


class SSOInputError(SSOConfigError):
    """A configuration the rules refuse; ``field`` names the form field it is about ('' for the whole form)."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


def _actor(by: Any) -> Actor:
    return Actor.for_user(by) if by is not None else Actor.system()


# --- attribute mapping presets ------------------------------------------------------------------

# OIDC claim names per IdP; the SAML attribute names come from the SAML module (one table for both sides).
_OIDC_PRESETS: dict[str, dict[str, str]] = {
    "okta": {"email": "email", "first_name": "given_name", "last_name": "family_name", "groups": "groups"},
    "entra": {"email": "email", "first_name": "given_name", "last_name": "family_name", "groups": "groups"},
    "google": {"email": "email", "first_name": "given_name", "last_name": "family_name", "groups": "groups"},
    "generic": {"email": "email", "first_name": "given_name", "last_name": "family_name", "groups": "groups"},
}


def preset_labels() -> dict[str, str]:
    """Preset key → label shown in the form (Okta, Microsoft Entra ID, Google Workspace, generic)."""
    return dict(saml.ATTRIBUTE_PRESET_LABELS)


def attribute_presets(kind: str) -> dict[str, dict[str, str]]:
    """Attribute (SAML) or claim (OIDC) names per preset: ``{preset: {email, first_name, last_name, groups}}``."""
    table = _OIDC_PRESETS if kind == SSOConnection.Kind.OIDC else saml.ATTRIBUTE_PRESETS
    return {key: {f: str(value.get(f, "") or "") for f in MAPPING_FIELDS} for key, value in table.items()}


def clean_attribute_mapping(mapping: dict[str, Any] | None, *, kind: str, preset: str = "") -> dict[str, str]:
    """A mapping with exactly the four fields: the preset's names, overridden by non-empty entries.

    Raises SSOInputError for a name that is too long or has control characters.
    """
    base = attribute_presets(kind).get(preset, {}) if preset else {}
    result: dict[str, str] = {}
    for name in MAPPING_FIELDS:
        value = str((mapping or {}).get(name) or "").strip() or base.get(name, "")
        if len(value) > ATTRIBUTE_NAME_MAX or _CONTROL_RE.search(value):
            raise SSOInputError("Attribute names are at most 255 printable characters.", field=f"attr_{name}")
        if value:
            result[name] = value
    if preset:
        result["preset"] = preset
    return result


# --- configuration inputs -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SAMLSettings:
    """What an admin entered for a SAML IdP, in one of three ways (``source``)."""

    source: str  # "metadata_xml" | "metadata_url" | "manual"
    metadata_xml: str = ""
    metadata_url: str = ""
    entity_id: str = ""
    sso_url: str = ""
    slo_url: str = ""
    certificate: str = ""
    want_assertion_signed: bool = True
    allow_idp_initiated: bool = False


@dataclass(frozen=True, slots=True)
class OIDCSettings:
    """What an admin entered for an OpenID Connect provider. An empty secret on update keeps the stored one."""

    issuer: str
    client_id: str
    client_secret: str = ""
    scopes: tuple[str, ...] = DEFAULT_OIDC_SCOPES
    mfa_acr_values: tuple[str, ...] = ()


def _insecure_loopback_allowed() -> bool:
    return bool(settings.DEBUG or getattr(settings, "SSO_ALLOW_INSECURE_LOOPBACK", False))


def _check_url(value: str, *, field: str, label: str, required: bool = True) -> str:
    """A usable https URL (plain http only to loopback in development/tests); raises SSOInputError."""
    url = (value or "").strip()
    if not url:
        if required:
            raise SSOInputError(f"Enter the {label}.", field=field)
        return ""
    if len(url) > URL_MAX or _CONTROL_RE.search(url) or " " in url:
        raise SSOInputError(f"The {label} is not a valid URL.", field=field)
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        raise SSOInputError(f"The {label} is not a valid URL.", field=field) from None
    if parts.username or parts.password:
        raise SSOInputError(f"The {label} must not contain a user name or password.", field=field)
    if not host:
        raise SSOInputError(f"The {label} is not a valid URL (no host).", field=field)
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and host in ("127.0.0.1", "localhost", "::1") and _insecure_loopback_allowed():
        return url
    raise SSOInputError(f"The {label} must start with https://.", field=field)


def _saml_idp_from_metadata(xml: str, *, field: str) -> dict[str, Any]:
    try:
        parsed = metadata.parse_idp_metadata(xml)
        return metadata.metadata_config(parsed)
    except SSOConfigError as exc:
        raise SSOInputError(str(exc), field=field) from None
    except (ValueError, TypeError, KeyError) as exc:
        # The parser promises SSOConfigError; anything else is still bad input, not a server error.
        logger.warning("unexpected metadata parse error", exc_info=exc)
        raise SSOInputError("This file could not be read as SAML metadata.", field=field) from None


def _split_certificates(text: str) -> list[str]:
    blocks = re.findall(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", text, flags=re.DOTALL)
    return blocks or [text]


def saml_config_build(data: SAMLSettings, *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate SAML settings and resolve them into ``SSOConnection.config`` keys.

    May download the metadata URL (bounded by the metadata module's deadline).
    On edit, an empty metadata upload with ``source="metadata_xml"`` keeps the
    IdP settings of the previous upload. Raises SSOInputError naming the field.
    """
    previous = previous or {}
    if data.source not in SAML_SOURCES:
        raise SSOInputError("Choose how to configure the identity provider.", field="source")
    config: dict[str, Any] = {
        "source": data.source,
        "want_assertion_signed": bool(data.want_assertion_signed),
        "allow_idp_initiated": bool(data.allow_idp_initiated),
        "metadata_url": "",
    }
    now = timezone.now().isoformat()
    if data.source == "metadata_xml":
        xml = data.metadata_xml or ""
        if not xml.strip():
            if previous.get("source") == "metadata_xml" and previous.get("idp_entity_id"):
                keep = ("idp_entity_id", "idp_sso_url", "idp_sso_binding", "idp_slo_url", "idp_x509_certs")
                config.update({k: previous.get(k) for k in (*keep, "metadata_valid_until", "metadata_xml")})
                return config
            raise SSOInputError("Upload the metadata XML file from your identity provider.", field="metadata_xml")
        config.update(_saml_idp_from_metadata(xml, field="metadata_xml"))
        config["metadata_xml"] = xml
        config["metadata_fetched_at"] = now
    elif data.source == "metadata_url":
        url = _check_url(data.metadata_url, field="metadata_url", label="metadata URL")
        try:
            xml = metadata.fetch_idp_metadata(url)
        except SSOConfigError as exc:
            raise SSOInputError(str(exc), field="metadata_url") from None
        config.update(_saml_idp_from_metadata(xml, field="metadata_url"))
        config.update({"metadata_url": url, "metadata_xml": xml, "metadata_fetched_at": now})
    else:
        entity_id = (data.entity_id or "").strip()
        if not entity_id:
            raise SSOInputError("Enter the identity provider's entity ID (issuer).", field="entity_id")
        if len(entity_id) > ENTITY_ID_MAX or _CONTROL_RE.search(entity_id):
            raise SSOInputError("The entity ID is at most 1024 printable characters.", field="entity_id")
        sso_url = _check_url(data.sso_url, field="sso_url", label="single sign-on URL")
        slo_url = _check_url(data.slo_url, field="slo_url", label="single logout URL", required=False)
        text = (data.certificate or "").strip()
        if not text:
            raise SSOInputError("Paste the identity provider's signing certificate.", field="certificate")
        certs: list[str] = []
        try:
            for block in _split_certificates(text):
                pem = metadata.parse_certificate(block)
                if pem not in certs:
                    certs.append(pem)
        except SSOConfigError as exc:
            raise SSOInputError(str(exc), field="certificate") from None
        config.update(
            {
                "idp_entity_id": entity_id,
                "idp_sso_url": sso_url,
                "idp_sso_binding": metadata.BINDING_REDIRECT,
                "idp_slo_url": slo_url,
                "idp_x509_certs": certs,
                "metadata_valid_until": None,
            }
        )
    return config


def _clean_scopes(scopes: tuple[str, ...] | list[str]) -> list[str]:
    cleaned = list(dict.fromkeys(["openid", *(s.strip() for s in scopes if s and s.strip())]))
    if len(cleaned) > SCOPES_MAX:
        raise SSOInputError(f"Request at most {SCOPES_MAX} scopes.", field="scopes")
    for scope in cleaned:
        if not SCOPE_RE.match(scope):
            raise SSOInputError(f"“{scope[:40]}” is not a valid scope name.", field="scopes")
    return cleaned


def oidc_config_build(data: OIDCSettings, *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate OIDC settings and fetch the provider's discovery document (always, on every save).

    Raises SSOInputError naming the field: an issuer whose discovery fails or
    misses required fields, a missing client id, malformed scopes.
    """
    issuer = (data.issuer or "").strip()
    if not issuer:
        raise SSOInputError("Enter the issuer URL.", field="issuer")
    issuer = _check_url(issuer, field="issuer", label="issuer")
    client_id = (data.client_id or "").strip()
    if not client_id:
        raise SSOInputError("Enter the client ID from your identity provider.", field="client_id")
    if len(client_id) > CLIENT_ID_MAX or _CONTROL_RE.search(client_id):
        raise SSOInputError("The client ID is at most 255 printable characters.", field="client_id")
    scopes = _clean_scopes(data.scopes)
    acr_values = [v.strip() for v in data.mfa_acr_values if v and v.strip()]
    if any(len(v) > ATTRIBUTE_NAME_MAX or _CONTROL_RE.search(v) for v in acr_values):
        raise SSOInputError("ACR values are at most 255 printable characters each.", field="mfa_acr_values")
    try:
        discovery = oidc.discover(issuer)
    except SSOConfigError as exc:
        raise SSOInputError(str(exc), field="issuer") from None
    config: dict[str, Any] = {
        "issuer": issuer,
        "client_id": client_id,
        "scopes": scopes,
        "discovery": discovery,
        "discovered_at": timezone.now().isoformat(),
        "mfa_acr_values": acr_values,
    }
    method = (previous or {}).get("token_endpoint_auth_method")
    if method:
        config["token_endpoint_auth_method"] = method
    return config


def _check_secret(secret: str) -> str:
    if len(secret) > CLIENT_SECRET_MAX or _CONTROL_RE.search(secret):
        raise SSOInputError("The client secret is at most 2048 printable characters.", field="client_secret")
    return secret


# Keys whose change means the connection talks to a different IdP (or differently): a new test is needed.
_PROTOCOL_KEYS = {
    SSOConnection.Kind.SAML: ("idp_entity_id", "idp_sso_url", "idp_x509_certs", "want_assertion_signed"),
    SSOConnection.Kind.OIDC: ("issuer", "client_id", "scopes"),
}
# Keys the system maintains between edits (tests, metadata refreshes); an edit carries them over.
_RUNTIME_KEYS = (
    "tested_at",
    "idp_cert_expiry_warned",
    "metadata_error",
    "metadata_error_at",
    "metadata_error_notified",
)


# What an absent key means (the protocol modules apply the same defaults).
_PROTOCOL_DEFAULTS: dict[str, Any] = {"want_assertion_signed": True}


def _protocol_changed(kind: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    def value(config: dict[str, Any], key: str) -> Any:
        return config.get(key, _PROTOCOL_DEFAULTS.get(key))

    return any(value(before, key) != value(after, key) for key in _PROTOCOL_KEYS.get(kind, ()))


def _clean_name(*, tenant: Tenant | None, name: str, exclude_id: int | None = None) -> str:
    cleaned = (name or "").strip()
    if not cleaned:
        raise SSOInputError("Give the connection a name, e.g. “Okta”.", field="name")
    if len(cleaned) > NAME_MAX or _CONTROL_RE.search(cleaned):
        raise SSOInputError(f"The name is at most {NAME_MAX} printable characters.", field="name")
    if selectors.connection_name_taken(tenant=tenant, name=cleaned, exclude_id=exclude_id):
        raise SSOInputError("Another connection already has this name.", field="name")
    return cleaned


def _enqueue_metadata_refresh(connection_id: int) -> None:
    from apps.sso.tasks import refresh_saml_metadata

    refresh_saml_metadata.delay(connection_id)


def _after_commit_refresh(connection: SSOConnection) -> None:
    if connection.kind == SSOConnection.Kind.SAML and (connection.config or {}).get("metadata_url"):
        # robust: a broker outage must not turn a saved connection into a 500; the periodic refresh catches up.
        transaction.on_commit(functools.partial(_enqueue_metadata_refresh, connection.pk), robust=True)


# --- connections --------------------------------------------------------------------------------


def connection_create(
    *,
    tenant: Tenant | None,
    kind: str,
    name: str,
    saml: SAMLSettings | None = None,
    oidc_settings: OIDCSettings | None = None,
    attribute_mapping: dict[str, Any] | None = None,
    preset: str = "",
    public_id: uuid.UUID | None = None,
    by: User | None,
) -> SSOConnection:
    """Create a draft connection of ``tenant`` (the platform's for None; enabled only after a successful test).

    SAML: from metadata XML, a metadata URL (downloaded now, then refreshed
    by the worker) or manual entity ID / SSO URL / certificate. OIDC: issuer
    (discovery fetched and checked now), client id, client secret (stored
    encrypted), scopes. ``public_id`` lets the add page show the SP URLs
    before the connection exists. Raises SSOInputError; nothing is written then.
    """
    if kind not in SSOConnection.Kind.values:
        raise SSOInputError("Choose SAML or OpenID Connect.", field="kind")
    name = _clean_name(tenant=tenant, name=name)
    mapping = clean_attribute_mapping(attribute_mapping, kind=kind, preset=preset)
    secret_encrypted = ""
    if kind == SSOConnection.Kind.SAML:
        if saml is None:
            raise SSOInputError("Enter the identity provider's settings.")
        config = saml_config_build(saml)
    else:
        if oidc_settings is None:
            raise SSOInputError("Enter the provider's settings.")
        secret = _check_secret(oidc_settings.client_secret or "")
        if not secret:
            raise SSOInputError("Enter the client secret from your identity provider.", field="client_secret")
        config = oidc_config_build(oidc_settings)
        secret_encrypted = crypto.encrypt(secret)
    with transaction.atomic():
        # Checked again inside the transaction: the network part above may have taken seconds.
        name = _clean_name(tenant=tenant, name=name)
        if public_id is not None and SSOConnection.objects.filter(public_id=public_id).exists():
            raise SSOInputError("This form was already used to create a connection; open the connection instead.")
        connection = SSOConnection.objects.create(
            public_id=public_id or uuid.uuid4(),
            tenant=tenant,
            kind=kind,
            name=name,
            status=SSOConnection.Status.DRAFT,
            config=config,
            secret_encrypted=secret_encrypted,
            attribute_mapping=mapping,
        )
        record(
            "sso.connection_create",
            tenant=tenant,
            actor=_actor(by),
            target=connection,
            metadata={"before": None, "after": selectors.connection_snapshot(connection)},
        )
        _after_commit_refresh(connection)
    return connection


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


def connection_update(
    *,
    connection: SSOConnection,
    name: str,
    saml: SAMLSettings | None = None,
    oidc_settings: OIDCSettings | None = None,
    attribute_mapping: dict[str, Any] | None = None,
    preset: str = "",
    by: User | None,
) -> SSOConnection:
    """Change a connection's name, IdP settings and attribute mapping; audited with before/after.

    The IdP settings are validated (and fetched/discovered) exactly as on
    create; if that fails nothing changes. An empty OIDC client secret keeps
    the stored one. If the IdP settings change, the connection needs a new
    successful test before it can be enabled again; an enabled connection
    stays enabled (its new settings passed validation) and the page asks for
    a new test. Raises SSOInputError.
    """
    kind = connection.kind
    name = _clean_name(tenant=connection.tenant, name=name, exclude_id=connection.pk)
    mapping = clean_attribute_mapping(attribute_mapping, kind=kind, preset=preset)
    new_secret = ""
    if kind == SSOConnection.Kind.SAML:
        if saml is None:
            raise SSOInputError("Enter the identity provider's settings.")
        config = saml_config_build(saml, previous=connection.config)
    else:
        if oidc_settings is None:
            raise SSOInputError("Enter the provider's settings.")
        new_secret = _check_secret(oidc_settings.client_secret or "")
        config = oidc_config_build(oidc_settings, previous=connection.config)
    with transaction.atomic():
        locked = _lock_connection(connection)
        before = selectors.connection_snapshot(locked)
        old_config = dict(locked.config or {})
        retest = _protocol_changed(kind, old_config, config) or bool(new_secret)
        for key in _RUNTIME_KEYS:
            if key in old_config:
                config.setdefault(key, old_config[key])
        if kind == SSOConnection.Kind.SAML and config.get("metadata_url") == old_config.get("metadata_url"):
            for key in ("metadata_error", "metadata_error_at"):
                config.pop(key, None)  # the download just succeeded
        if retest:
            config.pop("tested_at", None)
            if locked.status == SSOConnection.Status.TESTED:
                locked.status = SSOConnection.Status.DRAFT
        locked.name = _clean_name(tenant=locked.tenant, name=name, exclude_id=locked.pk)
        locked.config = config
        locked.attribute_mapping = mapping
        if new_secret:
            locked.secret_encrypted = crypto.encrypt(new_secret)
        locked.updated_at = timezone.now()
        locked.save(update_fields=["name", "config", "attribute_mapping", "secret_encrypted", "status", "updated_at"])
        record(
            "sso.connection_update",
            tenant=locked.tenant,
            actor=_actor(by),
            target=locked,
            metadata={
                "before": before,
                "after": selectors.connection_snapshot(locked),
                "client_auth_changed": bool(new_secret),
                "needs_new_test": retest,
            },
        )
        _after_commit_refresh(locked)
    return locked


def connection_set_status(*, connection: SSOConnection, enabled: bool, by: User | None) -> SSOConnection:
    """Enable (people can sign in with it) or disable a connection; audited.

    Enabling needs a successful test sign-in since the IdP settings last
    changed (status "tested", or "disabled" after one). Disabling applies to
    an enabled connection; sessions already signed in stay until they end.
    Raises SSOInputError when the rule refuses.
    """
    with transaction.atomic():
        locked = _lock_connection(connection)
        before = locked.status
        if enabled:
            if locked.status == SSOConnection.Status.ENABLED:
                return locked
            if not (locked.config or {}).get("tested_at"):
                raise SSOInputError(
                    "Run a successful test sign-in first: a connection is enabled only once it has worked."
                )
            locked.status = SSOConnection.Status.ENABLED
        else:
            if locked.status != SSOConnection.Status.ENABLED:
                raise SSOInputError("Only an enabled connection can be disabled.")
            locked.status = SSOConnection.Status.DISABLED
        locked.updated_at = timezone.now()
        locked.save(update_fields=["status", "updated_at"])
        record(
            "sso.connection_enable" if enabled else "sso.connection_disable",
            tenant=locked.tenant,
            actor=_actor(by),
            target=locked,
            metadata={"before": {"status": before}, "after": {"status": locked.status}, "name": locked.name},
        )
    return locked


def connection_delete(*, connection: SSOConnection, by: User | None) -> None:
    """Delete a connection that is not enabled, with the identities linked through it; audited.

    Members keep their accounts and memberships. Raises SSOInputError for an
    enabled connection (disable it first).
    """
    with transaction.atomic():
        locked = _lock_connection(connection)
        if locked.status == SSOConnection.Status.ENABLED:
            raise SSOInputError("Disable the connection before deleting it.")
        identities = ExternalIdentity.objects.filter(connection=locked).count()
        record(
            "sso.connection_delete",
            tenant=locked.tenant,
            actor=_actor(by),
            target=locked,
            metadata={"before": selectors.connection_snapshot(locked), "after": None, "identities": identities},
        )
        locked.delete()


def connection_request_metadata_refresh(*, connection: SSOConnection, by: User | None) -> None:
    """Ask the worker to download a URL-configured SAML connection's metadata again now; audited.

    Raises SSOInputError if the connection has no metadata URL.
    """
    if connection.kind != SSOConnection.Kind.SAML or not (connection.config or {}).get("metadata_url"):
        raise SSOInputError("This connection is not configured from a metadata URL.")
    with transaction.atomic():
        record("sso.metadata_refresh_request", tenant=connection.tenant, actor=_actor(by), target=connection)
        _after_commit_refresh(connection)


def client_secret(connection: SSOConnection) -> str:
    """The decrypted OIDC client secret, for the protocol call only. Raises SSOConfigError if unreadable."""
    return crypto.decrypt(connection.secret_encrypted)


# --- verified domains ---------------------------------------------------------------------------


def normalize_domain(value: str) -> str:
    """``value`` as a lowercase IDNA (punycode) domain with at least two labels; raises SSOInputError."""
    text = (value or "").strip().lower().rstrip(".")
    if text.startswith("@"):
        text = text[1:]
    if not text:
        raise SSOInputError("Enter a domain, e.g. acme.com.", field="domain")
    if any(ch in text for ch in "@/:?#* \t") or _CONTROL_RE.search(text):
        raise SSOInputError(
            "Enter just the domain, e.g. acme.com (no e-mail address, URL or wildcard).", field="domain"
        )
    try:
        text = idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise SSOInputError("This is not a valid domain name.", field="domain") from None
    labels = text.split(".")
    if len(text) > DOMAIN_MAX or len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels):
        raise SSOInputError("This is not a valid domain name.", field="domain")
    if labels[-1].isdigit():
        raise SSOInputError("Enter a domain name, not an IP address.", field="domain")
    return text


def email_domain(email: str) -> str:
    """The normalised domain of an e-mail address, or '' if the address is not usable."""
    address = (email or "").strip()
    if address.count("@") != 1:
        return ""
    try:
        validate_email(address)
        return normalize_domain(address.rsplit("@", 1)[1])
    except (ValidationError, SSOInputError):
        return ""


def domain_claim(*, tenant: Tenant | None, domain: str, by: User | None) -> VerifiedDomain:
    """Claim ``domain`` for ``tenant`` (the platform for None) with a fresh DNS TXT token; staff verify it later.

    A domain belongs to one tenant only; shared mailbox providers (gmail.com…)
    cannot be claimed. Raises SSOInputError (the message does not reveal which
    tenant holds a taken domain).
    """
    name = normalize_domain(domain)
    if name in PUBLIC_MAIL_DOMAINS:
        raise SSOInputError(
            f"{name} is a public e-mail provider; it cannot belong to one organisation.", field="domain"
        )
    taken = "This domain is already claimed. If it is yours, contact Bastion support."
    with transaction.atomic():
        existing = VerifiedDomain.objects.filter(domain=name).first()
        if existing is not None:
            if existing.tenant_id == (tenant.pk if tenant is not None else None):
                raise SSOInputError(f"{name} is already on your list.", field="domain")
            raise SSOInputError(taken, field="domain")
        try:
            with transaction.atomic():  # savepoint: a concurrent claim of the same domain ends as a form error
                claim = VerifiedDomain.objects.create(tenant=tenant, domain=name, dns_token=secrets.token_hex(16))
        except IntegrityError:
            raise SSOInputError(taken, field="domain") from None
        record(
            "sso.domain_claim",
            tenant=tenant,
            actor=_actor(by),
            target=claim,
            metadata={"domain": name, "before": None, "after": {"verified": False}},
        )
    return claim


def _require_staff(by: Any) -> None:
    if by is None or not (getattr(by, "is_active", False) and getattr(by, "is_staff", False)):
        raise SSOInputError("Only platform staff can verify or release domains of other organisations.")


def domain_verify(*, domain: VerifiedDomain, by: User) -> VerifiedDomain:
    """Mark a claimed domain verified (platform staff only, after checking the DNS TXT record).

    From then on the tenant's SSO connections may provision people of that
    domain, and home-realm discovery sends them to the tenant's IdP. Audited
    on the tenant's and the platform's chain. Raises SSOInputError for a
    non-staff caller.
    """
    _require_staff(by)
    with transaction.atomic():
        locked = VerifiedDomain.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=domain.pk)
        if locked.verified_at is not None:
            return locked
        locked.verified_at = timezone.now()
        locked.verified_by = by
        locked.save(update_fields=["verified_at", "verified_by"])
        meta = {"domain": locked.domain, "before": {"verified": False}, "after": {"verified": True}}
        if locked.tenant_id is not None:
            record("sso.domain_verify", tenant=locked.tenant_id, actor=_actor(by), target=locked, metadata=meta)
        record(
            "sso.domain_verify",
            tenant=None,
            actor=_actor(by),
            target=locked,
            metadata={**meta, "tenant": locked.tenant.slug if locked.tenant else None},
        )
    return locked


def domain_release(*, domain: VerifiedDomain, by: User | None, tenant: Tenant | None = None) -> None:
    """Remove a domain claim: by the owning tenant's admin (pass ``tenant``) or by platform staff.

    Once released, the domain's people are no longer provisioned by the
    tenant's connections (identities already linked keep working) and
    discovery stops routing them. Audited. Raises SSOInputError when ``tenant``
    does not own the claim, or a staff-only release is asked by someone else.
    """
    if tenant is None:
        _require_staff(by)
    with transaction.atomic():
        locked = VerifiedDomain.objects.select_for_update().filter(pk=domain.pk).first()
        if locked is None:
            return
        if tenant is not None and locked.tenant_id != tenant.pk:
            raise SSOInputError("This domain is not claimed by your organisation.")
        meta = {
            "domain": locked.domain,
            "before": {"verified": locked.verified_at is not None},
            "after": None,
        }
        if locked.tenant_id is not None:
            record("sso.domain_release", tenant=locked.tenant_id, actor=_actor(by), target=locked, metadata=meta)
        if tenant is None:
            record("sso.domain_release", tenant=None, actor=_actor(by), target=locked, metadata=meta)
        locked.delete()


def connection_for_email(email: str) -> SSOConnection | None:
    """Home-realm discovery: the enabled connection of whoever owns ``email``'s *verified* domain.

    ``None`` for an unusable address, an unclaimed or unverified domain, or an
    owner without an enabled connection (the person then signs in with a
    password). With several enabled connections the first by name wins.
    """
    domain = email_domain(email)
    if not domain:
        return None
    claim = selectors.verified_domain_for(domain=domain)
    if claim is None:
        return None
    return (
        SSOConnection.objects.select_related("tenant")
        .filter(tenant_id=claim.tenant_id, status=SSOConnection.Status.ENABLED)
        .order_by("name", "pk")
        .first()
    )


# --- sign-in ------------------------------------------------------------------------------------


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


def _full_name(assertion: Assertion) -> str:
    return " ".join(p for p in (assertion.first_name.strip(), assertion.last_name.strip()) if p)[:150]


def _policy(tenant: Tenant) -> SignInPolicy:
    return policy_for(tenant)


def _is_admin(membership: Membership) -> bool:
    """Owner or admin, or holding an admin-grade permission through a (group) role binding."""
    if membership.role in ADMIN_ROLES:
        return True
    return bool(ADMIN_PERMISSIONS & set(permsets.load(membership).actions))


def _create_user(email: str, assertion: Assertion) -> tuple[User, bool]:
    """Find-or-create the user for ``email`` (a concurrent sign-in may create it first)."""
    try:
        with transaction.atomic():
            user = User.objects.create_user(email=email, full_name=_full_name(assertion))
    except IntegrityError:
        return User.objects.select_for_update().get(email__iexact=email), False
    # The tenant's IdP vouches for an address under the tenant's verified domain.
    account_services.email_mark_verified(user=user)
    return user, True


def _link(connection: SSOConnection, subject: str, user: User) -> ExternalIdentity:
    try:
        with transaction.atomic():
            return ExternalIdentity.objects.create(connection=connection, subject=subject, user=user)
    except IntegrityError:
        # The same subject was linked by a concurrent sign-in; it must be the same person.
        identity = ExternalIdentity.objects.select_related("user").get(connection=connection, subject=subject)
        if identity.user_id != user.pk:
            raise SSOError("subject", "This identity is already linked to another account.") from None
        return identity


@dataclass
class _Provisioned:
    user: User
    membership: Membership | None
    identity: ExternalIdentity
    user_created: bool = False
    identity_created: bool = False
    membership_created: bool = False
    groups_before: list[str] = field(default_factory=list)
    groups_after: list[str] = field(default_factory=list)


def _identity_user(connection: SSOConnection, assertion: Assertion) -> tuple[User, ExternalIdentity, bool, bool]:
    """The user an assertion names: through the linked identity, else by e-mail under a verified domain."""
    subject = (assertion.subject or "").strip()
    if not subject or len(subject) > SUBJECT_MAX or _CONTROL_RE.search(subject):
        raise SSOError("subject", "The identity provider sent no usable subject (NameID / sub).")
    identity = (
        ExternalIdentity.objects.select_for_update(of=("self",))
        .select_related("user")
        .filter(connection=connection, subject=subject)
        .first()
    )
    if identity is not None:
        return identity.user, identity, False, False
    email = (assertion.email or "").strip().lower()
    domain = email_domain(email)
    if not domain:
        raise SSOError("email", "The identity provider sent no usable e-mail address.")
    # The one rule that keeps tenants apart: only this connection's own verified domains link people.
    if not selectors.domain_is_verified_for(tenant=connection.tenant, domain=domain):
        owner = connection.tenant.name if connection.tenant else "the platform"
        raise SSOError("domain", f"{domain} is not a verified domain of {owner}, so this sign-in cannot be used.")
    user = User.objects.select_for_update().filter(email__iexact=email).first()
    created = False
    if user is None:
        if connection.tenant is None:
            raise SSOError("platform", "Platform sign-in only works for existing staff accounts.")
        user, created = _create_user(email, assertion)
    identity = _link(connection, subject, user)
    return user, identity, created, True


def _provision(connection: SSOConnection, assertion: Assertion) -> _Provisioned:
    """Everything a sign-in changes, inside the caller's transaction; raises SSOError to refuse."""
    if connection.status != SSOConnection.Status.ENABLED:
        raise SSOError("connection_disabled", "Sign-in through this identity provider is not enabled.")
    user, identity, user_created, identity_created = _identity_user(connection, assertion)
    tenant = connection.tenant
    if tenant is None:
        if not user.is_staff:
            raise SSOError("platform", "Platform sign-in only works for platform staff accounts.")
    elif user.is_staff:
        raise SSOError("staff", "Platform staff accounts cannot sign in through an organisation's identity provider.")
    if not user.is_active:
        raise SSOError("inactive", "This account is deactivated.")
    result = _Provisioned(
        user=user,
        membership=None,
        identity=identity,
        user_created=user_created,
        identity_created=identity_created,
    )
    now = timezone.now()
    if tenant is not None:
        membership = Membership.objects.for_tenant(tenant).select_for_update(of=("self",)).filter(user=user).first()
        if membership is None:
            # Membership creation serialises per tenant, as every membership change does (tenants services).
            locked_tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
            if locked_tenant.is_suspended:
                raise SSOError("tenant_suspended", f"{tenant.name} is suspended; new members cannot join.")
            if selectors.was_removed(tenant=tenant, user=user):
                raise SSOError("membership_removed", REMOVED_MESSAGE.format(tenant=tenant.name))
            membership, result.membership_created = Membership.objects.get_or_create(
                tenant=tenant,
                user=user,
                defaults={"status": Membership.Status.ACTIVE, "role": Membership.Role.MEMBER, "joined_at": now},
            )
        if membership.status == Membership.Status.DISABLED:
            raise SSOError(
                "membership_disabled", f"Your access to {tenant.name} has been disabled by an administrator."
            )
        if membership.status == Membership.Status.INVITED:
            membership.status = Membership.Status.ACTIVE
            membership.joined_at = now
            membership.save(update_fields=["status", "joined_at"])
            result.membership_created = True  # joined now: recorded as a join below
        result.groups_before = list(membership.idp_groups or [])
        result.groups_after = _clean_groups(assertion.groups)
        if result.groups_before != result.groups_after:
            membership.idp_groups = result.groups_after
            membership.save(update_fields=["idp_groups"])
            permsets.forget(membership)
        result.membership = membership
    identity.last_sign_in_at = now
    identity.last_groups = _clean_groups(assertion.groups)
    identity.save(update_fields=["last_sign_in_at", "last_groups"])
    if not user.full_name and _full_name(assertion):
        user.full_name = _full_name(assertion)
        user.save(update_fields=["full_name"])
    return result


def _sign_in_metadata(connection: SSOConnection, assertion: Assertion | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "method": connection.kind,
        "idp": connection.name,
        "connection": str(connection.public_id),
    }
    if assertion is not None:
        meta.update(
            {
                "email": (assertion.email or "")[:254],
                "subject": (assertion.subject or "")[:SUBJECT_MAX],
                "mfa_asserted": bool(assertion.mfa_asserted),
                "authn_context": (assertion.authn_context or "")[:300],
            }
        )
    return meta


def record_sign_in_failure(*, connection: SSOConnection, error: SSOError, assertion: Assertion | None = None) -> None:
    """Audit a refused SSO sign-in on the connection's tenant chain (protocol failure or rule denial)."""
    result = AuditEvent.Result.DENIED if error.code in DENIAL_CODES else AuditEvent.Result.FAILURE
    meta = {**_sign_in_metadata(connection, assertion), "code": error.code, "reason": error.message[:500]}
    display = (assertion.email if assertion is not None else "") or ""
    with transaction.atomic():
        record(
            "auth.sign_in",
            tenant=connection.tenant,
            actor=Actor.anonymous(display[:254]),
            target=connection,
            result=result,
            metadata=meta,
        )


def _bump_access_version(tenant_id: int) -> None:
    permsets.bump_version(tenant_id)


def _mark_session(request: HttpRequest, connection: SSOConnection, assertion: Assertion) -> None:
    """Record how this session signed in: the accounts record (policy, MFA) and which connection (logout)."""
    account_services.mark_session_sign_in(
        request, method=connection.kind, idp=connection.name, mfa=bool(assertion.mfa_asserted), audit=False
    )
    request.session[SESSION_SSO_KEY] = {"connection": str(connection.public_id), "tenant": connection.tenant_id}


def complete_sign_in(*, connection: SSOConnection, assertion: Assertion, request: HttpRequest) -> User:
    """Sign in the person ``assertion`` names through ``connection`` (JIT provisioning); returns the user.

    Order: linked identity (connection, subject) → else, only for an e-mail
    under a verified domain of the connection's tenant, the user with that
    e-mail (created if none) is linked. Then the membership in the
    connection's tenant (and only there) is created as "member" or activated;
    a disabled one is refused. ``Membership.idp_groups`` is replaced by the
    asserted groups, so a group removed at the IdP takes its bound roles away
    now. With ``mfa_required_admin_sso`` an admin without IdP MFA is refused.
    Then Django's login, the session's sign-in record and ``auth.sign_in``.

    Someone an administrator removed from the tenant is not added back
    (``membership_removed``) until they are invited again.

    Raises SSOError (code: subject, email, domain, staff, inactive,
    membership_disabled, membership_removed, tenant_suspended, mfa_required, connection_disabled,
    platform); every refusal is audited and nothing else is kept.
    """
    try:
        with transaction.atomic():
            done = _provision(connection, assertion)
            tenant = connection.tenant
            membership = done.membership
            if tenant is not None and membership is not None:
                policy = _policy(tenant)
                if policy.mfa_required_admin_sso and not assertion.mfa_asserted and _is_admin(membership):
                    raise SSOError(
                        "mfa_required",
                        f"{tenant.name} requires administrators to use multi-factor authentication at the "
                        "identity provider. Sign in again with MFA.",
                    )
                if done.membership_created:
                    record(
                        "member.join",
                        tenant=tenant,
                        actor=Actor.for_user(done.user),
                        target=membership,
                        metadata={"role": membership.role, "via": connection.kind, "idp": connection.name},
                    )
                if done.groups_before != done.groups_after:
                    record(
                        "member.idp_groups_sync",
                        tenant=tenant,
                        actor=Actor.for_user(done.user),
                        target=membership,
                        metadata={"before": done.groups_before, "after": done.groups_after, "idp": connection.name},
                    )
                    transaction.on_commit(functools.partial(_bump_access_version, tenant.pk))
            record(
                "auth.sign_in",
                tenant=tenant,
                actor=Actor.for_user(done.user),
                target=done.user,
                metadata={
                    **_sign_in_metadata(connection, assertion),
                    "user_created": done.user_created,
                    "identity_linked": done.identity_created,
                    "membership_created": done.membership_created,
                    "groups": done.groups_after[:50],
                },
            )
            auth_login(request, done.user, backend=MODEL_BACKEND)
            _mark_session(request, connection, assertion)
    except SSOError as exc:
        record_sign_in_failure(connection=connection, error=exc, assertion=assertion)
        raise
    return done.user


# A member an administrator removed (apps.tenants MembershipRemoval) is not provisioned again.
REMOVED_MESSAGE = "Your access to {tenant} was removed by an administrator; ask them to invite you again."


# --- test sign-ins ------------------------------------------------------------------------------


@dataclass
class TestCheck:
    """One line of a test report; ``ok`` None means "for information"."""

    label: str
    ok: bool | None
    detail: str = ""


@dataclass
class TestReport:
    """What a test sign-in received and whether a real sign-in would work (JSON-safe, kept in the session)."""

    __test__ = False  # not a pytest test class

    connection_id: int
    ok: bool
    checks: list[TestCheck] = field(default_factory=list)
    subject: str = ""
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    groups: list[str] = field(default_factory=list)
    group_roles: dict[str, list[str]] = field(default_factory=dict)
    mfa_asserted: bool = False
    authn_context: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    error_code: str = ""
    error_message: str = ""
    at: str = ""

    @property
    def group_rows(self) -> list[tuple[str, list[str]]]:
        """Each received group with the names of the roles bound to it."""
        return [(group, self.group_roles.get(group, [])) for group in self.groups]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestReport:
        checks = [TestCheck(**c) for c in data.get("checks", [])]
        return cls(**{**data, "checks": checks})


ATTRIBUTES_SHOWN_MAX = 60
ATTRIBUTE_VALUE_MAX = 500


def _printable_attributes(attributes: dict[str, Any]) -> dict[str, str]:
    """Received attributes as text, bounded in number and size (the report lives in the session)."""
    shown: dict[str, str] = {}
    for key in sorted(attributes, key=str)[:ATTRIBUTES_SHOWN_MAX]:
        if str(key) in ("nonce", "at_hash", "c_hash"):
            continue
        value = attributes[key]
        text = ", ".join(str(v) for v in list(value)[:50]) if isinstance(value, list | tuple) else str(value)
        shown[str(key)[:200]] = text[:ATTRIBUTE_VALUE_MAX]
    return shown


def _test_checks(connection: SSOConnection, assertion: Assertion) -> tuple[list[TestCheck], dict[str, list[str]]]:
    checks = [TestCheck("Signed response accepted", True, "Signature, audience, time window and replay checks passed.")]
    subject = (assertion.subject or "").strip()
    checks.append(
        TestCheck(
            "Subject", bool(subject) and len(subject) <= SUBJECT_MAX, subject[:120] or "No NameID / sub received."
        )
    )
    domain = email_domain(assertion.email)
    checks.append(
        TestCheck(
            "E-mail address",
            bool(domain),
            assertion.email or "No e-mail address received: check the attribute mapping.",
        )
    )
    tenant = connection.tenant
    identity = (
        ExternalIdentity.objects.select_related("user").filter(connection=connection, subject=subject).first()
        if subject
        else None
    )
    if domain:
        verified = selectors.domain_is_verified_for(tenant=tenant, domain=domain)
        if verified:
            detail = f"{domain} is a verified domain of {tenant.name if tenant else 'the platform'}."
        elif identity is not None:
            detail = f"{domain} is not verified, but this identity is already linked, so it can still sign in."
        else:
            detail = f"{domain} is not a verified domain of this organisation: new people cannot be signed in."
        checks.append(TestCheck("Verified domain", verified or identity is not None, detail))
    user = identity.user if identity else User.objects.filter(email__iexact=(assertion.email or "").strip()).first()
    if user is not None and user.is_staff and tenant is not None:
        checks.append(TestCheck("Account", False, "This is a platform staff account; it cannot use a tenant's IdP."))
    elif identity is not None:
        checks.append(TestCheck("Account", None, f"Already linked to {identity.user.email}."))
    elif user is not None:
        checks.append(TestCheck("Account", None, f"Would be linked to the existing account {user.email}."))
    else:
        checks.append(TestCheck("Account", None, "A new account would be created at the first sign-in."))
    if tenant is not None and user is not None and selectors.was_removed(tenant=tenant, user=user):
        checks.append(
            TestCheck(
                "Membership",
                None,
                f"{user.email} was removed from {tenant.name} by an administrator: refused until invited again.",
            )
        )
    groups = _clean_groups(assertion.groups)
    group_roles = selectors.roles_for_groups(tenant=tenant, groups=groups) if tenant is not None else {}
    mapped = sum(1 for roles in group_roles.values() if roles)
    if groups:
        group_detail = f"{len(groups)} received, {mapped} bound to roles."
    else:
        group_detail = "No groups received (check the groups attribute if you bind roles to groups)."
    checks.append(TestCheck("Groups", None, group_detail))
    if tenant is not None and _policy(tenant).mfa_required_admin_sso and not assertion.mfa_asserted:
        mfa_detail = "Not asserted: admins would be refused while the policy requires MFA at the IdP."
    else:
        mfa_detail = "Asserted." if assertion.mfa_asserted else "Not asserted."
    checks.append(TestCheck("MFA at the IdP", None, mfa_detail))
    return checks, group_roles


def test_sign_in(*, connection: SSOConnection, assertion: Assertion, by: User) -> TestReport:
    """Report on a test sign-in without signing anyone in or changing any account.

    The only write besides the audit event: when every check passes, the
    connection is marked tested (draft → tested), which allows enabling it.
    """
    checks, group_roles = _test_checks(connection, assertion)
    ok = all(check.ok is not False for check in checks)
    now = timezone.now()
    report = TestReport(
        connection_id=connection.pk,
        ok=ok,
        checks=checks,
        subject=(assertion.subject or "")[:SUBJECT_MAX],
        email=(assertion.email or "")[:254],
        first_name=(assertion.first_name or "")[:150],
        last_name=(assertion.last_name or "")[:150],
        groups=_clean_groups(assertion.groups),
        group_roles=group_roles,
        mfa_asserted=bool(assertion.mfa_asserted),
        authn_context=(assertion.authn_context or "")[:300],
        attributes=_printable_attributes(dict(assertion.attributes or {})),
        at=now.isoformat(),
    )
    with transaction.atomic():
        locked = _lock_connection(connection)
        before = locked.status
        if ok:
            config = dict(locked.config or {})
            config["tested_at"] = now.isoformat()
            locked.config = config
            if locked.status == SSOConnection.Status.DRAFT:
                locked.status = SSOConnection.Status.TESTED
            locked.save(update_fields=["config", "status"])
        record(
            "sso.connection_test",
            tenant=locked.tenant,
            actor=_actor(by),
            target=locked,
            result=AuditEvent.Result.SUCCESS if ok else AuditEvent.Result.FAILURE,
            metadata={
                "before": {"status": before},
                "after": {"status": locked.status},
                "email": report.email,
                "groups": report.groups[:50],
                "failed_checks": [c.label for c in checks if c.ok is False],
            },
        )
    return report


def test_sign_in_failed(*, connection: SSOConnection, error: SSOError | SSOConfigError, by: User) -> TestReport:
    """Report (and audit) a test sign-in the protocol layer refused; the connection is not changed."""
    code = getattr(error, "code", "config")
    message = getattr(error, "message", "") or str(error)
    report = TestReport(
        connection_id=connection.pk,
        ok=False,
        checks=[TestCheck("Signed response accepted", False, message)],
        error_code=code,
        error_message=message,
        at=timezone.now().isoformat(),
    )
    with transaction.atomic():
        record(
            "sso.connection_test",
            tenant=connection.tenant,
            actor=_actor(by),
            target=connection,
            result=AuditEvent.Result.FAILURE,
            metadata={"code": code, "reason": message[:500]},
        )
    return report


def parse_iso(value: str | None) -> datetime | None:
    """A stored ISO timestamp as an aware datetime, or None (for templates)."""
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
