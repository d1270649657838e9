"""SSO connection writes: attribute presets, SAML/OIDC configuration inputs, create/update/status/delete/refresh.

A configuration is validated and built (metadata parsed or downloaded, OIDC
discovery run) before any transaction opens, so a slow IdP never holds a row
lock and a refused configuration writes nothing. The OIDC client secret is
stored encrypted; only ``client_secret`` decrypts it, for the protocol call.
"""

from __future__ import annotations

import functools
import logging
import re
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import record
from apps.sso import crypto, metadata, oidc, saml, selectors
from apps.sso.models import ExternalIdentity, SSOConnection
from apps.sso.services._common import (
    _CONTROL_RE,
    ATTRIBUTE_NAME_MAX,
    CLIENT_ID_MAX,
    CLIENT_SECRET_MAX,
    ENTITY_ID_MAX,
    NAME_MAX,
    SCOPE_RE,
    SCOPES_MAX,
    URL_MAX,
    SSOInputError,
    _actor,
    _lock_connection,
)
from apps.sso.types import SSOConfigError
from apps.tenants.models import Tenant

logger = logging.getLogger(__name__)

MAPPING_FIELDS = ("email", "first_name", "last_name", "groups")
SAML_SOURCES = ("metadata_xml", "metadata_url", "manual")
DEFAULT_OIDC_SCOPES = ("openid", "email", "profile")

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
    # The IdP never sends email_verified: accept addresses without it (off by default; an explicit false
    # is refused anyway). Only for IdPs that verify every address they issue.
    email_verified_not_sent: bool = False


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
        "email_verified_not_sent": bool(data.email_verified_not_sent),
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
# Trust material: what decides *which* IdP's word is accepted. A change returns the connection to
# draft (a new successful test before it can be enabled), bumps its trust epoch so no identity link
# carries over, and, for an enabled connection, is audited as high severity and e-mailed to every
# Owner (#7, item 3). Nested keys are "discovery.<name>".
_TRUST_KEYS = {
    SSOConnection.Kind.SAML: ("idp_entity_id", "idp_sso_url", "idp_x509_certs", "metadata_url"),
    SSOConnection.Kind.OIDC: ("issuer", "client_id", "discovery.jwks_uri", "discovery.token_endpoint"),
}


def _trust_value(config: dict[str, Any], key: str) -> Any:
    if key.startswith("discovery."):
        return (config.get("discovery") or {}).get(key.split(".", 1)[1])
    value = config.get(key)
    return value or None  # "" and a missing key are the same: no metadata URL


def _trust_changes(kind: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Names of the trust-material keys that differ between two configurations."""
    return [key for key in _TRUST_KEYS.get(kind, ()) if _trust_value(before, key) != _trust_value(after, key)]


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
    successful test before it can be enabled again. A change of trust material
    (``_TRUST_KEYS``: certificate, entity ID/issuer, SSO or metadata URL,
    client id, JWKS or token endpoint) returns even an enabled connection to
    draft, bumps its trust epoch (no identity link carries over) and is
    audited as ``sso.connection_trust_change``; for a connection that was
    enabled, with high severity and an e-mail to every Owner. Raises SSOInputError.
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
        trust_changed = _trust_changes(kind, old_config, config)
        retest = bool(trust_changed) or _protocol_changed(kind, old_config, config) or bool(new_secret)
        for key in _RUNTIME_KEYS:
            if key in old_config:
                config.setdefault(key, old_config[key])
        if kind == SSOConnection.Kind.SAML and config.get("metadata_url") == old_config.get("metadata_url"):
            for key in ("metadata_error", "metadata_error_at"):
                config.pop(key, None)  # the download just succeeded
        status_before = locked.status
        if retest:
            config.pop("tested_at", None)
            if locked.status == SSOConnection.Status.TESTED:
                locked.status = SSOConnection.Status.DRAFT
        if trust_changed:
            # Whatever the status: an enabled connection stops signing people in until tested again.
            locked.status = SSOConnection.Status.DRAFT
            locked.trust_epoch += 1
        locked.name = _clean_name(tenant=locked.tenant, name=name, exclude_id=locked.pk)
        locked.config = config
        locked.attribute_mapping = mapping
        if new_secret:
            locked.secret_encrypted = crypto.encrypt(new_secret)
        locked.updated_at = timezone.now()
        locked.save(
            update_fields=[
                "name",
                "config",
                "attribute_mapping",
                "secret_encrypted",
                "status",
                "trust_epoch",
                "updated_at",
            ]
        )
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
                "trust_changed": trust_changed,
            },
        )
        if trust_changed:
            _record_trust_change(locked, by=by, changed=trust_changed, status_before=status_before)
        _after_commit_refresh(locked)
    return locked


def _record_trust_change(connection: SSOConnection, *, by: User | None, changed: list[str], status_before: str) -> None:
    """Audit a change of trust material; if the connection was in use, high severity and a notice to every Owner."""
    from apps.sso import notices

    was_enabled = status_before == SSOConnection.Status.ENABLED
    detail = {
        "changed": changed,
        "status_before": status_before,
        "trust_epoch": connection.trust_epoch,
        "severity": "high" if was_enabled else "normal",
        "by": by.email if by is not None else "system",
    }
    record(
        "sso.connection_trust_change", tenant=connection.tenant, actor=_actor(by), target=connection, metadata=detail
    )
    if was_enabled:
        notices.enqueue(connection_id=connection.pk, event=notices.TRUST_CHANGED, detail=detail)


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
