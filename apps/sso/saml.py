"""SAML 2.0, service-provider side: settings, SP metadata, AuthnRequest, and Response validation.

Pure functions over an ``SSOConnection`` (``kind == "saml"``) that the sign-in
flow calls; every protocol detail stays here. python3-saml (OneLogin) runs in
strict mode and does the XML-signature work; this module adds what it leaves
loose: a 120 s clock skew instead of its 300 s, exact Recipient/Destination
and audience matching, the unsolicited-response rule, the replay store
(``SeenAssertion``), size limits, and one stable error code per failure.

``connection.config`` keys read here: ``idp_entity_id``, ``idp_sso_url``,
``idp_slo_url``, ``idp_x509_certs`` (list of PEM; several during a rollover),
``want_assertion_signed`` (default True), ``want_message_signed`` (default
False), ``allow_idp_initiated`` (default False). Whatever those say, a
Response is accepted only if the Response or the Assertion is signed by one
of the configured certificates.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from django.db import IntegrityError, transaction
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Saml2
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from apps.sso.metadata import parse_certificate
from apps.sso.models import SeenAssertion, SSOConnection
from apps.sso.types import Assertion, SSOConfigError, SSOError

logger = logging.getLogger(__name__)

# A SAMLResponse (base64) larger than this is refused before it is decoded or parsed.
MAX_RESPONSE_BASE64 = 512 * 1024
# Tolerated clock difference with the IdP for Conditions NotBefore / NotOnOrAfter, in seconds.
CLOCK_SKEW_SECONDS = 120
# The SAML bindings specification limits RelayState to 80 bytes.
MAX_RELAY_STATE_BYTES = 80

# AuthnContextClassRef values (and Microsoft's authnmethodsreferences values) that mean the
# IdP used more than one factor. An entry ending in "*" matches by prefix.
MFA_AUTHN_CONTEXTS: tuple[str, ...] = (
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor*",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactor*",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:X509",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:Smartcard*",
    "urn:oasis:names:tc:SAML:2.0:ac:classes:TimeSyncToken",
    "https://refeds.org/profile/mfa",
    "http://schemas.microsoft.com/claims/multipleauthn",
)
# Entra ID / ADFS send the methods used in this attribute (full claim URI or short name).
AMR_ATTRIBUTE_SUFFIX = "authnmethodsreferences"

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

_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_MAX_SUBJECT = 255  # ExternalIdentity.subject
_MAX_ASSERTION_ID = 255  # SeenAssertion.assertion_id
_MAX_GROUPS = 1000
_NS = Saml2.NSMAP

_VE = OneLogin_Saml2_ValidationError
# python3-saml validation error → (our stable code, plain message).
_ONELOGIN_ERRORS: dict[int, tuple[str, str]] = {
    _VE.UNSUPPORTED_SAML_VERSION: ("malformed", "The response is not SAML 2.0."),
    _VE.MISSING_ID: ("malformed", "The response has no ID."),
    _VE.WRONG_NUMBER_OF_ASSERTIONS: ("signature", "The response must contain exactly one assertion."),
    _VE.MISSING_STATUS: ("malformed", "The response has no status."),
    _VE.MISSING_STATUS_CODE: ("malformed", "The response has no status code."),
    _VE.STATUS_CODE_IS_NOT_SUCCESS: ("status", "The identity provider did not sign you in."),
    _VE.WRONG_SIGNED_ELEMENT: ("signature", "The response has a signature in an unexpected place."),
    _VE.ID_NOT_FOUND_IN_SIGNED_ELEMENT: ("signature", "A signed element has no ID."),
    _VE.DUPLICATED_ID_IN_SIGNED_ELEMENTS: ("signature", "Signed elements share an ID."),
    _VE.INVALID_SIGNED_ELEMENT: ("signature", "A signature does not cover the element it sits in."),
    _VE.DUPLICATED_REFERENCE_IN_SIGNED_ELEMENTS: ("signature", "A signature reference is duplicated."),
    _VE.UNEXPECTED_SIGNED_ELEMENTS: ("signature", "The response has unexpected signatures."),
    _VE.WRONG_NUMBER_OF_SIGNATURES_IN_RESPONSE: ("signature", "The response has more than one signature."),
    _VE.WRONG_NUMBER_OF_SIGNATURES_IN_ASSERTION: ("signature", "The assertion has more than one signature."),
    _VE.WRONG_NUMBER_OF_SIGNATURES: ("signature", "The response has an unexpected number of signatures."),
    _VE.INVALID_XML_FORMAT: ("malformed", "The response does not follow the SAML 2.0 schema."),
    _VE.WRONG_INRESPONSETO: ("in_response_to", "The response answers a different sign-in request."),
    _VE.NO_ENCRYPTED_ASSERTION: ("unsupported", "The assertion is not encrypted."),
    _VE.NO_ENCRYPTED_NAMEID: ("unsupported", "The NameID is not encrypted."),
    _VE.MISSING_CONDITIONS: ("malformed", "The assertion has no Conditions."),
    _VE.ASSERTION_TOO_EARLY: ("not_yet_valid", "The assertion is not valid yet (check the clocks)."),
    _VE.ASSERTION_EXPIRED: ("expired", "The assertion has expired."),
    _VE.RESPONSE_EXPIRED: ("expired", "The response has expired."),
    _VE.SESSION_EXPIRED: ("expired", "The identity provider's session has already expired."),
    _VE.WRONG_NUMBER_OF_AUTHSTATEMENTS: ("malformed", "The assertion must have exactly one AuthnStatement."),
    _VE.NO_ATTRIBUTESTATEMENT: ("malformed", "The assertion has no attributes."),
    _VE.ENCRYPTED_ATTRIBUTES: ("unsupported", "Encrypted attributes are not supported."),
    _VE.WRONG_DESTINATION: ("destination", "The response was meant for another address (Destination)."),
    _VE.EMPTY_DESTINATION: ("destination", "The response has an empty Destination."),
    _VE.WRONG_AUDIENCE: ("audience", "The assertion is meant for another service provider (Audience)."),
    _VE.ISSUER_MULTIPLE_IN_RESPONSE: ("issuer", "The response names several issuers."),
    _VE.ISSUER_NOT_FOUND_IN_ASSERTION: ("issuer", "The assertion has no single Issuer."),
    _VE.WRONG_ISSUER: ("issuer", "The response comes from another identity provider (Issuer)."),
    _VE.WRONG_SUBJECTCONFIRMATION: ("subject_confirmation", "The assertion has no valid SubjectConfirmation."),
    _VE.NO_SIGNED_MESSAGE: ("signature", "The response is not signed, and this connection requires it."),
    _VE.NO_SIGNED_ASSERTION: ("signature", "The assertion is not signed, and this connection requires it."),
    _VE.NO_SIGNATURE_FOUND: ("signature", "The response is not signed."),
    _VE.INVALID_SIGNATURE: ("signature", "The signature is not valid for the configured IdP certificate(s)."),
    _VE.KEYINFO_NOT_FOUND_IN_ENCRYPTED_DATA: ("unsupported", "Encrypted assertions are not supported."),
    _VE.CHILDREN_NODE_NOT_FOUND_IN_KEYINFO: ("unsupported", "Encrypted assertions are not supported."),
    _VE.UNSUPPORTED_RETRIEVAL_METHOD: ("unsupported", "Encrypted assertions are not supported."),
    _VE.NO_NAMEID: ("subject", "The assertion has no NameID."),
    _VE.EMPTY_NAMEID: ("subject", "The assertion's NameID is empty."),
    _VE.SP_NAME_QUALIFIER_NAME_MISMATCH: ("audience", "The NameID was issued for another service provider."),
    _VE.DUPLICATED_ATTRIBUTE_NAME_FOUND: ("malformed", "The assertion repeats an attribute name."),
    _VE.AUTHN_CONTEXT_MISMATCH: ("malformed", "The authentication context does not match the request."),
    _VE.DEPRECATED_SIGNATURE_METHOD: ("signature", "The response is signed with a deprecated algorithm (SHA-1)."),
    _VE.DEPRECATED_DIGEST_METHOD: ("signature", "The response uses a deprecated digest algorithm (SHA-1)."),
}


# --- URLs and settings ------------------------------------------------------------------------


def _base(base_url: str) -> str:
    base = (base_url or "").rstrip("/")
    if urlsplit(base).scheme not in ("https", "http") or not urlsplit(base).hostname:
        raise SSOConfigError(f"The site base URL {base_url!r} is not an absolute http(s) URL.")
    return base


def sp_entity_id(connection: SSOConnection, *, base_url: str) -> str:
    """The SP entity id (also the SP metadata URL) of ``connection``."""
    return f"{_base(base_url)}/sso/saml/{connection.public_id}/metadata/"


def acs_url(connection: SSOConnection, *, base_url: str) -> str:
    """The Assertion Consumer Service URL (HTTP-POST) of ``connection``."""
    return f"{_base(base_url)}/sso/saml/{connection.public_id}/acs/"


def sls_url(connection: SSOConnection, *, base_url: str) -> str:
    """The Single Logout Service URL of ``connection``."""
    return f"{_base(base_url)}/sso/saml/{connection.public_id}/sls/"


def _flag(config: Mapping[str, Any], key: str, default: bool) -> bool:
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
        "wantAssertionsSigned": _flag(config, "want_assertion_signed", True),
        "wantMessagesSigned": _flag(config, "want_message_signed", False),
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


def _onelogin_settings(connection: SSOConnection, *, base_url: str) -> OneLogin_Saml2_Settings:
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


# --- AuthnRequest -----------------------------------------------------------------------------


def login_url(connection: SSOConnection, *, base_url: str, relay_state: str) -> tuple[str, str]:
    """Start an SP-initiated sign-in: returns (URL to redirect the browser to, AuthnRequest ID).

    The request is unsigned, HTTP-Redirect binding, NameIDPolicy unspecified.
    The caller stores the ID in the session and passes it back as
    ``expected_request_id`` to ``process_response``. ``relay_state`` must be an
    opaque token of at most 80 bytes (never a URL: the IdP echoes it back
    unsigned). Raises SSOConfigError for an unusable connection and ValueError
    for a too-long relay state.
    """
    if len(relay_state.encode()) > MAX_RELAY_STATE_BYTES:
        raise ValueError(f"relay_state must be at most {MAX_RELAY_STATE_BYTES} bytes")
    settings = _onelogin_settings(connection, base_url=base_url)
    host = urlsplit(_base(base_url)).netloc
    auth = OneLogin_Saml2_Auth(
        {"https": "on", "http_host": host, "script_name": "", "get_data": {}, "post_data": {}}, settings
    )
    url = auth.login(return_to=relay_state)
    return url, auth.get_last_request_id()


# --- Response ---------------------------------------------------------------------------------


def _saml_response_bytes(post_data: Mapping[str, Any]) -> bytes:
    value = post_data.get("SAMLResponse") if post_data is not None else None
    if not isinstance(value, str) or not value.strip():
        raise SSOError("malformed", "No SAMLResponse was posted.")
    if len(value) > MAX_RESPONSE_BASE64:
        raise SSOError("too_large", "The SAML response is too large.")
    compact = re.sub(r"\s+", "", value)  # IdPs may wrap the base64 in lines
    try:
        xml = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SSOError("malformed", "The SAML response is not valid base64.") from exc
    if not xml.lstrip().startswith((b"<", b"\xef\xbb\xbf<")):
        raise SSOError("malformed", "The SAML response is not XML.")
    return xml


def _fail(code: str, message: str, detail: str = "") -> SSOError:
    if detail:
        logger.info("saml response refused", extra={"code": code, "detail": detail[:500]})
    return SSOError(code, message)


def _translate(exc: OneLogin_Saml2_ValidationError) -> SSOError:
    code, message = _ONELOGIN_ERRORS.get(exc.code, ("invalid", "The SAML response is not valid."))
    if exc.code == _VE.STATUS_CODE_IS_NOT_SUCCESS:
        # python3-saml: "The status code of the Response was not Success, was <code> -> <message>"
        detail = str(exc).split(", was ", 1)[-1][:200]
        message = f"The identity provider did not sign you in ({detail})."
    return _fail(code, message, str(exc))


def _the_assertion(document: etree._Element) -> etree._Element:
    """The one saml:Assertion, a direct child of the Response (python3-saml checked there is exactly one)."""
    nodes = document.xpath("/samlp:Response/saml:Assertion", namespaces=_NS)
    if len(nodes) != 1 or len(document.xpath("//saml:Assertion", namespaces=_NS)) != 1:
        raise _fail("signature", "The response must contain exactly one assertion.")
    return nodes[0]


def _instant(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return OneLogin_Saml2_Utils.parse_SAML_to_time(value)
    except Exception as exc:  # python3-saml raises a bare Exception for bad timestamps
        raise _fail("malformed", "The assertion has a malformed timestamp.") from exc


def _same_url(a: str, b: str) -> bool:
    def norm(url: str) -> tuple[str, str, int | None, str, str]:
        parts = urlsplit(url.strip())
        scheme = parts.scheme.lower()
        port = parts.port
        if (scheme, port) in (("https", 443), ("http", 80)):
            port = None
        return scheme, (parts.hostname or "").lower(), port, parts.path, parts.query

    try:
        return norm(a) == norm(b)
    except ValueError:
        return False


def _check_conditions(assertion: etree._Element, *, audience: str, now: int) -> int | None:
    """Time window with our skew, and every AudienceRestriction naming us. Returns NotOnOrAfter."""
    conditions = assertion.find("saml:Conditions", _NS)
    if conditions is None:
        raise _fail("malformed", "The assertion has no Conditions.")
    not_before = _instant(conditions.get("NotBefore"))
    not_on_or_after = _instant(conditions.get("NotOnOrAfter"))
    if not_before is not None and not_before > now + CLOCK_SKEW_SECONDS:
        raise _fail("not_yet_valid", "The assertion is not valid yet (check the clocks of the IdP and this server).")
    if not_on_or_after is not None and not_on_or_after + CLOCK_SKEW_SECONDS <= now:
        raise _fail("expired", "The assertion has expired; please sign in again.")
    restrictions = conditions.findall("saml:AudienceRestriction", _NS)
    if not restrictions:
        raise _fail("audience", "The assertion names no audience.")
    for restriction in restrictions:
        audiences = [(node.text or "").strip() for node in restriction.findall("saml:Audience", _NS)]
        if audience not in audiences:
            raise _fail("audience", "The assertion is meant for another service provider (Audience).", f"{audiences}")
    return not_on_or_after


def _bearer_confirmations(assertion: etree._Element) -> list[etree._Element]:
    result = []
    for confirmation in assertion.findall("saml:Subject/saml:SubjectConfirmation", _NS):
        if confirmation.get("Method") not in (None, Saml2.CM_BEARER):
            continue
        data = confirmation.find("saml:SubjectConfirmationData", _NS)
        if data is not None:
            result.append(data)
    return result


def _check_subject_confirmation(
    assertion: etree._Element, *, acs: str, in_response_to: str | None, now: int
) -> etree._Element:
    """The bearer SubjectConfirmationData that is valid now, for our ACS and this request.

    When none is, say why (the first reason found, in the order recipient,
    request, time) so the admin sees "destination" rather than a generic code.
    """
    candidates = _bearer_confirmations(assertion)
    reasons: list[tuple[str, str]] = []
    for data in candidates:
        recipient = data.get("Recipient")
        irt = data.get("InResponseTo")
        not_on_or_after = _instant(data.get("NotOnOrAfter"))
        not_before = _instant(data.get("NotBefore"))
        if not recipient or not _same_url(recipient, acs):
            reasons.append(("destination", "The assertion was meant for another address (Recipient)."))
        elif irt and in_response_to and irt != in_response_to:
            reasons.append(("in_response_to", "The assertion answers a different sign-in request."))
        elif not_on_or_after is None:
            reasons.append(("malformed", "The assertion's SubjectConfirmationData has no NotOnOrAfter."))
        elif not_on_or_after <= now:
            reasons.append(("expired", "The assertion has expired; please sign in again."))
        elif not_before is not None and not_before > now:
            reasons.append(("not_yet_valid", "The assertion is not valid yet (check the clocks)."))
        else:
            return data
    if not reasons:
        raise _fail("subject_confirmation", "The assertion has no bearer SubjectConfirmation.")
    order = ["destination", "in_response_to", "malformed", "expired", "not_yet_valid"]
    code, message = min(reasons, key=lambda reason: order.index(reason[0]))
    raise _fail(code, message)


def _check_in_response_to(
    response_irt: str | None,
    confirmation_irt: str | None,
    *,
    expected_request_id: str | None,
    allow_idp_initiated: bool,
) -> None:
    answered = {value for value in (response_irt, confirmation_irt) if value}
    if expected_request_id is None:
        if not allow_idp_initiated:
            raise _fail(
                "unsolicited",
                "Sign-in must start here, not at the identity provider (IdP-initiated sign-in is off).",
            )
        if answered:
            # A response to a request that this browser session did not send.
            raise _fail("in_response_to", "The response answers a sign-in request that was not started here.")
        return
    if not answered:
        if not allow_idp_initiated:
            raise _fail("unsolicited", "The response does not answer the sign-in request that was started here.")
        return
    if answered != {expected_request_id}:
        raise _fail("in_response_to", "The response answers a different sign-in request.")


def _diagnose_subject_confirmation(
    document: etree._Element, *, acs: str, in_response_to: str | None, now: int
) -> SSOError:
    try:
        _check_subject_confirmation(_the_assertion(document), acs=acs, in_response_to=in_response_to, now=now)
    except SSOError as exc:
        return exc
    return _fail("subject_confirmation", "The assertion has no valid SubjectConfirmation.")


def _text_values(values: list[Any]) -> list[str]:
    result = []
    for value in values:
        if isinstance(value, dict):  # a nested NameID
            value = (value.get("NameID") or {}).get("value") or ""
        value = str(value).strip()
        if value:
            result.append(value)
    return result


def _is_mfa_context(value: str) -> bool:
    for pattern in MFA_AUTHN_CONTEXTS:
        if pattern.endswith("*") and value.startswith(pattern[:-1]):
            return True
        if value == pattern:
            return True
    return False


def _friendly_attributes(response: OneLogin_Saml2_Response) -> dict[str, list[str]]:
    """Attributes by FriendlyName (e.g. "mail" for urn:oid:0.9.2342.19200300.100.1.3); {} if ambiguous."""
    try:
        return {name: _text_values(values) for name, values in response.get_friendlyname_attributes().items()}
    except OneLogin_Saml2_ValidationError:  # a FriendlyName used twice: do not guess
        return {}


def _values(attributes: dict[str, list[str]], friendly: dict[str, list[str]], name: str | None) -> list[str]:
    """The values of the attribute called ``name`` (by Name, else by FriendlyName)."""
    if not name:
        return []
    return attributes.get(name) or friendly.get(name) or []


def _first(values: list[str]) -> str:
    return values[0] if values else ""


def _check_expected_request_and_recipient(
    response: OneLogin_Saml2_Response,
    *,
    acs: str,
    expected_request_id: str | None,
    allow_idp_initiated: bool,
    now: int,
) -> int | None:
    document = response.document
    destination = document.get("Destination")
    if destination is not None and not _same_url(destination, acs):
        raise _fail("destination", "The response was meant for another address (Destination).")
    response_irt = document.get("InResponseTo")
    confirmation = _check_subject_confirmation(
        _the_assertion(document), acs=acs, in_response_to=response_irt or expected_request_id, now=now
    )
    _check_in_response_to(
        response_irt,
        confirmation.get("InResponseTo"),
        expected_request_id=expected_request_id,
        allow_idp_initiated=allow_idp_initiated,
    )
    return _instant(confirmation.get("NotOnOrAfter"))


def process_response(
    connection: SSOConnection,
    *,
    base_url: str,
    post_data: Mapping[str, Any],
    request_host: str,
    request_path: str,
    https: bool,
    expected_request_id: str | None,
) -> Assertion:
    """Validate a SAMLResponse posted to the ACS and return the verified identity.

    ``post_data`` is the POST body (``request.POST``); ``request_host`` (with
    port if not default), ``request_path`` and ``https`` describe the URL it
    was posted to, which must be the ACS URL derived from ``base_url``.
    ``expected_request_id`` is the AuthnRequest ID stored by ``login_url``, or
    None when this browser session started no sign-in.

    Checks, in strict mode: size (≤ 512 KiB base64) and base64/XML form, SAML
    2.0 schema, success status, exactly one assertion, signature by one of the
    configured certificates on the Response or the Assertion (as configured;
    at least one always), no SHA-1, issuer, Destination and Recipient equal to
    the ACS URL, audience equal to the SP entity id, Conditions NotBefore /
    NotOnOrAfter within 120 s of skew, InResponseTo equal to
    ``expected_request_id`` (a response without one is refused unless
    ``allow_idp_initiated``), NameID present and not transient, an e-mail
    (mapped attribute or e-mail-like NameID); last, the assertion ID is
    recorded in ``SeenAssertion`` until it expires, and a second use is refused.

    The replay insert runs in its own savepoint: call this outside (before)
    any transaction that might roll back after a failure, or a rolled-back
    sign-in leaves the assertion usable again until it expires. A concurrent
    duplicate blocks on the unique index and then fails as a replay.

    Raises SSOError(code, message); codes: too_large, malformed, unsupported,
    status, signature, issuer, destination, audience, expired, not_yet_valid,
    in_response_to, unsolicited, subject_confirmation, subject, email,
    replay, configuration, invalid.
    """
    xml = _saml_response_bytes(post_data)
    try:
        settings = _onelogin_settings(connection, base_url=base_url)
    except SSOConfigError as exc:
        raise SSOError("configuration", f"This SAML connection is not configured correctly: {exc}") from exc
    config = connection.config or {}
    allow_idp_initiated = _flag(config, "allow_idp_initiated", False)
    acs = acs_url(connection, base_url=base_url)
    audience = sp_entity_id(connection, base_url=base_url)
    request_data = {
        "https": "on" if https else "off",
        "http_host": request_host,
        "script_name": request_path,
        "get_data": {},
        "post_data": {},
    }

    try:
        response = OneLogin_Saml2_Response(settings, base64.b64encode(xml))
    except OneLogin_Saml2_Error as exc:  # an EncryptedAssertion and no SP key to decrypt it
        raise _fail("unsupported", "Encrypted assertions are not supported; turn encryption off at the IdP.") from exc
    except Exception as exc:  # lxml / defusedxml errors: XMLSyntaxError, DTD or entity forbidden
        raise _fail("malformed", "The SAML response is not well-formed XML.", repr(exc)) from exc

    now = int(time.time())
    try:
        response.is_valid(request_data, request_id=expected_request_id, raise_exceptions=True)
    except OneLogin_Saml2_ValidationError as exc:
        if exc.code == _VE.WRONG_SUBJECTCONFIRMATION:
            raise _diagnose_subject_confirmation(
                response.document, acs=acs, in_response_to=response.get_in_response_to(), now=now
            ) from exc
        raise _translate(exc) from exc
    except Exception as exc:  # python3-saml raises bare Exceptions (e.g. bad timestamps)
        logger.info("saml response refused", exc_info=True)
        raise _fail("malformed", "The SAML response could not be read.", repr(exc)) from exc

    # python3-saml accepted the response: everything below reads signed content only.
    try:
        document = response.document
        assertion = _the_assertion(document)
        conditions_expiry = _check_conditions(assertion, audience=audience, now=now)
        confirmation_expiry = _check_expected_request_and_recipient(
            response,
            acs=acs,
            expected_request_id=expected_request_id,
            allow_idp_initiated=allow_idp_initiated,
            now=now,
        )
        subject, name_id_format = response.get_nameid(), response.get_nameid_format()
        attributes = {name: _text_values(values) for name, values in response.get_attributes().items()}
        friendly = _friendly_attributes(response)
        authn_contexts = [value.strip() for value in response.get_authn_contexts() if value and value.strip()]
        assertion_id = response.get_assertion_id()
    except OneLogin_Saml2_ValidationError as exc:
        raise _translate(exc) from exc

    subject = (subject or "").strip()
    if not subject:
        raise _fail("subject", "The assertion has no NameID.")
    if name_id_format == Saml2.NAMEID_TRANSIENT:
        raise _fail(
            "subject",
            "The IdP sent a transient NameID, which changes at every sign-in; configure a persistent or e-mail NameID.",
        )
    if len(subject) > _MAX_SUBJECT:
        raise _fail("subject", "The NameID is too long.")
    if not assertion_id or len(assertion_id) > _MAX_ASSERTION_ID:
        raise _fail("malformed", "The assertion ID is missing or too long.")

    mapping = connection.attribute_mapping or {}
    email = _first(_values(attributes, friendly, mapping.get("email")))
    if not email and _EMAIL.match(subject):
        email = subject
    if not _EMAIL.match(email):
        raise _fail(
            "email",
            "The IdP sent no e-mail address. Map the e-mail attribute (received: "
            + (", ".join(sorted(attributes)) or "none")
            + ") or use an e-mail NameID.",
        )
    groups = tuple(dict.fromkeys(_values(attributes, friendly, mapping.get("groups"))))[:_MAX_GROUPS]

    amr = [
        value
        for name, values in attributes.items()
        if name.rstrip("/").rsplit("/", 1)[-1].lower() == AMR_ATTRIBUTE_SUFFIX
        for value in values
    ]
    mfa = any(_is_mfa_context(value) for value in authn_contexts) or any(
        "multipleauthn" in value.lower() for value in amr
    )

    expiries = [value for value in (conditions_expiry, confirmation_expiry) if value is not None]
    expires_at = datetime.fromtimestamp(max(expiries) + CLOCK_SKEW_SECONDS, tz=UTC)
    _remember(connection, assertion_id, expires_at)

    return Assertion(
        subject=subject,
        email=email,
        first_name=_first(_values(attributes, friendly, mapping.get("first_name")))[:150],
        last_name=_first(_values(attributes, friendly, mapping.get("last_name")))[:150],
        groups=groups,
        mfa_asserted=mfa,
        authn_context=", ".join(authn_contexts + [f"amr:{value}" for value in amr]),
        attributes={
            **attributes,
            "_name_id": subject,
            "_name_id_format": name_id_format or "",
            "_authn_context": authn_contexts,
        },
    )


def _remember(connection: SSOConnection, assertion_id: str, expires_at: datetime) -> None:
    """Record the assertion ID; a second use (even a concurrent one) raises SSOError("replay")."""
    try:
        with transaction.atomic():
            SeenAssertion.objects.create(connection=connection, assertion_id=assertion_id, expires_at=expires_at)
    except IntegrityError as exc:
        raise _fail("replay", "This sign-in response was already used; please sign in again.") from exc


def purge_seen_assertions(*, now: datetime | None = None) -> int:
    """Delete replay-store rows whose assertion has expired (SAML and OIDC alike); returns how many."""
    deleted, _ = SeenAssertion.objects.filter(expires_at__lt=now or datetime.now(UTC)).delete()
    return deleted


# --- Single logout ----------------------------------------------------------------------------


def process_logout(
    connection: SSOConnection,
    *,
    base_url: str,
    get_data: Mapping[str, Any],
    request_host: str,
    request_path: str,
    https: bool,
) -> tuple[str, str]:
    """Validate an IdP's LogoutRequest or LogoutResponse (HTTP-Redirect binding).

    Returns ``(name_id, reply_url)``: the NameID of a LogoutRequest ("" for a
    response) and, for a request when the IdP has a single logout URL, where to
    send the browser with our LogoutResponse ("" otherwise).

    The message must be signed (query-string signature) by one of the
    connection's IdP certificates: a logout is a state change that a
    cross-site link must not be able to trigger, so unlike python3-saml's
    default an unsigned message is refused (``wantMessagesSigned``). Strict
    mode also checks the issuer, the Destination (our SLS URL) and
    NotOnOrAfter. Nothing is deleted here: the caller ends the session.

    Raises SSOError("logout", …) for a missing, unsigned, wrongly signed or
    invalid message, SSOError("configuration", …) for an unusable connection.
    """
    if not any(isinstance(get_data.get(name), str) for name in ("SAMLRequest", "SAMLResponse")):
        raise _fail("logout", "No SAML LogoutRequest or LogoutResponse was sent.")
    if any(len(str(get_data.get(name) or "")) > MAX_RESPONSE_BASE64 for name in ("SAMLRequest", "SAMLResponse")):
        raise _fail("logout", "The logout message is too large.")
    try:
        raw = sp_settings(connection, base_url=base_url)
    except SSOConfigError as exc:
        raise SSOError("configuration", f"This SAML connection is not configured correctly: {exc}") from exc
    raw["security"]["wantMessagesSigned"] = True  # logout messages: signed, always
    try:
        settings = OneLogin_Saml2_Settings(raw)
    except OneLogin_Saml2_Error as exc:
        raise SSOError("configuration", f"The SAML settings are not usable: {exc}") from exc
    keys = ("SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature")
    request_data = {
        "https": "on" if https else "off",
        "http_host": request_host,
        "script_name": request_path,
        "get_data": {k: str(get_data[k]) for k in keys if k in get_data},
        "post_data": {},
    }
    auth = OneLogin_Saml2_Auth(request_data, settings)
    try:
        reply_url = auth.process_slo(keep_local_session=True) or ""
    except Exception as exc:  # python3-saml raises bare Exceptions on undecodable input
        logger.info("saml logout refused", exc_info=True)
        raise _fail("logout", "The logout message could not be read.", repr(exc)) from exc
    errors = auth.get_errors()
    if errors:
        raise _fail("logout", "The logout message was refused.", f"{errors} {auth.get_last_error_reason()}")
    if "SAMLRequest" in request_data["get_data"]:
        from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request

        try:
            name_id = str(OneLogin_Saml2_Logout_Request.get_nameid(auth.get_last_request_xml()) or "")
        except Exception:  # noqa: BLE001 -- a valid request without a readable NameID ends nothing more
            name_id = ""
        reply = reply_url if str(raw["idp"].get("singleLogoutService", {}).get("url") or "") else ""
        return name_id, reply
    return "", ""
