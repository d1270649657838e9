"""SSO connection configuration inputs: attribute presets, SAML and OIDC settings validated and resolved.

``saml_config_build`` and ``oidc_config_build`` turn what an administrator
typed or uploaded into ``SSOConnection.config`` keys, downloading the metadata
URL or running OIDC discovery as they go (bounded by the fetcher's deadline).
They write nothing: ``apps.sso.services.connections`` calls them before any
transaction opens, so a slow IdP never holds a row lock and a refused
configuration leaves the last working one as it was. Refusals raise
``SSOInputError`` naming the form field.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils import timezone

from apps.sso import oidc
from apps.sso.models import SSOConnection
from apps.sso.saml import ATTRIBUTE_PRESET_LABELS, ATTRIBUTE_PRESETS
from apps.sso.saml import binding as saml_binding
from apps.sso.saml.metadata import BINDING_REDIRECT, metadata_config, parse_certificate, parse_idp_metadata
from apps.sso.services._common import (
    _CONTROL_RE,
    ATTRIBUTE_NAME_MAX,
    CLIENT_ID_MAX,
    CLIENT_SECRET_MAX,
    ENTITY_ID_MAX,
    SCOPE_RE,
    SCOPES_MAX,
    URL_MAX,
    SSOInputError,
)
from apps.sso.types import SSOConfigError

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
    return dict(ATTRIBUTE_PRESET_LABELS)


def attribute_presets(kind: str) -> dict[str, dict[str, str]]:
    """Attribute (SAML) or claim (OIDC) names per preset: ``{preset: {email, first_name, last_name, groups}}``."""
    table = _OIDC_PRESETS if kind == SSOConnection.Kind.OIDC else ATTRIBUTE_PRESETS
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
        parsed = parse_idp_metadata(xml)
        return metadata_config(parsed)
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
            xml = saml_binding.fetch_idp_metadata(url)
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
                pem = parse_certificate(block)
                if pem not in certs:
                    certs.append(pem)
        except SSOConfigError as exc:
            raise SSOInputError(str(exc), field="certificate") from None
        config.update(
            {
                "idp_entity_id": entity_id,
                "idp_sso_url": sso_url,
                "idp_sso_binding": BINDING_REDIRECT,
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


def check_client_secret(secret: str) -> str:
    """``secret`` if it can be an OIDC client secret; SSOInputError on the client_secret field if not."""
    if len(secret) > CLIENT_SECRET_MAX or _CONTROL_RE.search(secret):
        raise SSOInputError("The client secret is at most 2048 printable characters.", field="client_secret")
    return secret
