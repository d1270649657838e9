"""Our side of SAML 2.0: the service provider's URLs, python3-saml settings and SP metadata.

Pure functions over an ``SSOConnection`` (``kind == "saml"``). The SP entity
id, ACS and SLS URLs derive from the site's base URL and the connection's
public id; python3-saml (OneLogin) is always configured in strict mode.

``connection.config`` keys read here: ``idp_entity_id``, ``idp_sso_url``,
``idp_slo_url``, ``idp_x509_certs`` (list of PEM; several during a rollover),
``want_assertion_signed`` (default True), ``want_message_signed`` (default
False). Whatever those say, a Response is accepted only if the Response or
the Assertion is signed by one of the configured certificates
(``apps.sso.saml.protocol``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Saml2
from onelogin.saml2.errors import OneLogin_Saml2_Error
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from apps.sso.models import SSOConnection
from apps.sso.saml.metadata import parse_certificate
from apps.sso.types import SSOConfigError

# What the UI offers as starting points for ``SSOConnection.attribute_mapping``.
ATTRIBUTE_PRESETS: dict[str, dict[str, str]] = {
    "okta": {"email": "email", "first_name": "firstName", "last_name": "lastName", "groups": "groups"},
    "entra": {
        "email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "first_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        "last_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        "groups": "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
    },
    "google": {"email": "email", "first_name": "firstName", "last_name": "lastName", "groups": "groups"},
    "generic": {"email": "email", "first_name": "firstName", "last_name": "lastName", "groups": "groups"},
}
ATTRIBUTE_PRESET_LABELS: dict[str, str] = {
    "okta": "Okta",
    "entra": "Microsoft Entra ID (Azure AD)",
    "google": "Google Workspace",
    "generic": "Generic SAML 2.0",
}


# --- URLs and settings ------------------------------------------------------------------------


def site_base(base_url: str) -> str:
    """``base_url`` without a trailing slash; SSOConfigError unless it is an absolute http(s) URL."""
    base = (base_url or "").rstrip("/")
    if urlsplit(base).scheme not in ("https", "http") or not urlsplit(base).hostname:
        raise SSOConfigError(f"The site base URL {base_url!r} is not an absolute http(s) URL.")
    return base


def sp_entity_id(connection: SSOConnection, *, base_url: str) -> str:
    """The SP entity id (also the SP metadata URL) of ``connection``."""
    return f"{site_base(base_url)}/sso/saml/{connection.public_id}/metadata/"


def acs_url(connection: SSOConnection, *, base_url: str) -> str:
    """The Assertion Consumer Service URL (HTTP-POST) of ``connection``."""
    return f"{site_base(base_url)}/sso/saml/{connection.public_id}/acs/"


def sls_url(connection: SSOConnection, *, base_url: str) -> str:
    """The Single Logout Service URL of ``connection``."""
    return f"{site_base(base_url)}/sso/saml/{connection.public_id}/sls/"


def flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
    """A boolean setting of ``config``; strings like "true"/"on" count as true (older configs stored text)."""
    value = config.get(key, default)
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _sp_part(connection: SSOConnection, *, base_url: str) -> dict[str, Any]:
    return {
        "entityId": sp_entity_id(connection, base_url=base_url),
        "assertionConsumerService": {
            "url": acs_url(connection, base_url=base_url),
            "binding": Saml2.BINDING_HTTP_POST,
        },
        "singleLogoutService": {
            "url": sls_url(connection, base_url=base_url),
            "binding": Saml2.BINDING_HTTP_REDIRECT,
        },
        "NameIDFormat": Saml2.NAMEID_UNSPECIFIED,
        "x509cert": "",
        "privateKey": "",
    }


def _security_part(config: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "authnRequestsSigned": False,
        "logoutRequestSigned": False,
        "logoutResponseSigned": False,
        "signMetadata": False,
        "wantAssertionsSigned": flag(config, "want_assertion_signed", True),
        "wantMessagesSigned": flag(config, "want_message_signed", False),
        "wantAssertionsEncrypted": False,
        "wantNameId": True,
        "wantNameIdEncrypted": False,
        "wantAttributeStatement": False,  # some IdPs send only a NameID (the e-mail)
        "requestedAuthnContext": False,  # never ask for "password": MFA contexts must stay possible
        "failOnAuthnContextMismatch": False,
        "allowRepeatAttributeName": False,  # two "email" attributes are ambiguous: refuse
        "rejectDeprecatedAlgorithm": True,
        "signatureAlgorithm": Saml2.RSA_SHA256,
        "digestAlgorithm": Saml2.SHA256,
        "allowSingleLabelDomains": True,  # on-premises IdPs (https://adfs/...) and http://localhost in dev
    }


def sp_settings(connection: SSOConnection, *, base_url: str) -> dict[str, Any]:
    """python3-saml settings (a dict for ``OneLogin_Saml2_Settings``) for ``connection``; strict mode.

    SP entity id, ACS and SLS URLs derive from ``base_url`` (scheme and host,
    no trailing slash needed) and ``connection.public_id``. AuthnRequests are
    not signed, so no SP key is needed. Raises SSOConfigError if the connection
    is not SAML, or its IdP entity id, SSO URL or certificates are missing or
    unreadable.
    """
    if connection.kind != SSOConnection.Kind.SAML:
        raise SSOConfigError("This connection is not a SAML connection.")
    config = connection.config or {}
    entity_id = str(config.get("idp_entity_id") or "").strip()
    sso_url = str(config.get("idp_sso_url") or "").strip()
    slo_url = str(config.get("idp_slo_url") or "").strip()
    if not entity_id:
        raise SSOConfigError("The IdP entity ID is missing.")
    if urlsplit(sso_url).scheme not in ("https", "http") or not urlsplit(sso_url).hostname:
        raise SSOConfigError("The IdP single sign-on URL is missing or not an http(s) URL.")
    if slo_url and urlsplit(slo_url).scheme not in ("https", "http"):
        raise SSOConfigError("The IdP single logout URL is not an http(s) URL.")
    raw_certs = config.get("idp_x509_certs") or []
    if isinstance(raw_certs, str):
        raw_certs = [raw_certs]
    certs = [parse_certificate(cert) for cert in raw_certs]
    if not certs:
        raise SSOConfigError("No IdP signing certificate is configured.")

    idp: dict[str, Any] = {
        "entityId": entity_id,
        "singleSignOnService": {"url": sso_url, "binding": Saml2.BINDING_HTTP_REDIRECT},
        "x509cert": certs[0],
        "x509certMulti": {"signing": certs},
    }
    if slo_url:
        idp["singleLogoutService"] = {"url": slo_url, "binding": Saml2.BINDING_HTTP_REDIRECT}
    return {
        "strict": True,
        "debug": False,
        "sp": _sp_part(connection, base_url=base_url),
        "idp": idp,
        "security": _security_part(config),
    }


def onelogin_settings(connection: SSOConnection, *, base_url: str) -> OneLogin_Saml2_Settings:
    """``sp_settings`` as python3-saml's settings object; SSOConfigError if the library refuses them."""
    try:
        return OneLogin_Saml2_Settings(sp_settings(connection, base_url=base_url))
    except OneLogin_Saml2_Error as exc:
        raise SSOConfigError(f"The SAML settings are not usable: {exc}") from exc


def sp_metadata_xml(connection: SSOConnection, *, base_url: str) -> str:
    """The SP metadata document to give the IdP admin (entity id, ACS, SLS; unsigned, no validUntil).

    Needs only the SP side, so it works for a draft connection whose IdP is
    not configured yet (the admin usually registers the SP at the IdP first).
    Raises SSOConfigError if the connection is not SAML or ``base_url`` is not
    an absolute http(s) URL.
    """
    if connection.kind != SSOConnection.Kind.SAML:
        raise SSOConfigError("This connection is not a SAML connection.")
    try:
        settings = OneLogin_Saml2_Settings(
            {
                "strict": True,
                "debug": False,
                "sp": _sp_part(connection, base_url=base_url),
                "security": _security_part(connection.config or {}),
            },
            sp_validation_only=True,
        )
    except OneLogin_Saml2_Error as exc:
        raise SSOConfigError(f"The SAML settings are not usable: {exc}") from exc
    xml = settings.get_sp_metadata()
    xml = xml if isinstance(xml, str) else xml.decode()
    errors = settings.validate_metadata(xml)
    if errors:  # pragma: no cover - python3-saml builds it from our settings
        raise SSOConfigError(f"The SP metadata is invalid: {', '.join(errors)}")
    root = etree.fromstring(xml.encode())  # our own document
    # python3-saml stamps validUntil two days ahead; an IdP that honours it would stop
    # trusting a file that was uploaded once, so drop it (cacheDuration stays).
    root.attrib.pop("validUntil", None)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()
