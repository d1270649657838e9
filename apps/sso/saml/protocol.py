"""SAML 2.0 Response validation: the protocol rules, on bytes already read from the request.

python3-saml (OneLogin) runs in strict mode and does the XML-signature work;
this module adds what it leaves loose: a 120 s clock skew instead of its
300 s, exact Recipient/Destination and audience matching, the unsolicited-
response rule, size limits on what is kept, and one stable error code per
failure. It reads and writes nothing but its arguments: reading the POST,
the replay store and the logout exchange are in ``apps.sso.saml.binding``.

``connection.config`` key read here besides ``apps.sso.saml.sp``'s:
``allow_idp_initiated`` (default False).
"""

from __future__ import annotations

import base64
import logging
import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from lxml import etree
from onelogin.saml2.constants import OneLogin_Saml2_Constants as Saml2
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from apps.sso.models import SSOConnection
from apps.sso.saml.sp import acs_url, flag, onelogin_settings, sp_entity_id
from apps.sso.types import Assertion, SSOConfigError, SSOError

logger = logging.getLogger(__name__)

# Tolerated clock difference with the IdP for Conditions NotBefore / NotOnOrAfter, in seconds.
CLOCK_SKEW_SECONDS = 120

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


# --- checks on the signed document ----------------------------------------------------------


def fail(code: str, message: str, detail: str = "") -> SSOError:
    """The SSOError to raise; ``detail`` (library text, never shown to the user) goes to the log only."""
    if detail:
        logger.info("saml response refused", extra={"code": code, "detail": detail[:500]})
    return SSOError(code, message)


def _translate(exc: OneLogin_Saml2_ValidationError) -> SSOError:
    code, message = _ONELOGIN_ERRORS.get(exc.code, ("invalid", "The SAML response is not valid."))
    if exc.code == _VE.STATUS_CODE_IS_NOT_SUCCESS:
        # python3-saml: "The status code of the Response was not Success, was <code> -> <message>"
        detail = str(exc).split(", was ", 1)[-1][:200]
        message = f"The identity provider did not sign you in ({detail})."
    return fail(code, message, str(exc))


def _the_assertion(document: etree._Element) -> etree._Element:
    """The one saml:Assertion, a direct child of the Response (python3-saml checked there is exactly one)."""
    nodes = document.xpath("/samlp:Response/saml:Assertion", namespaces=_NS)
    if len(nodes) != 1 or len(document.xpath("//saml:Assertion", namespaces=_NS)) != 1:
        raise fail("signature", "The response must contain exactly one assertion.")
    return nodes[0]


def _instant(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return OneLogin_Saml2_Utils.parse_SAML_to_time(value)
    except Exception as exc:  # python3-saml raises a bare Exception for bad timestamps
        raise fail("malformed", "The assertion has a malformed timestamp.") from exc


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
        raise fail("malformed", "The assertion has no Conditions.")
    not_before = _instant(conditions.get("NotBefore"))
    not_on_or_after = _instant(conditions.get("NotOnOrAfter"))
    if not_before is not None and not_before > now + CLOCK_SKEW_SECONDS:
        raise fail("not_yet_valid", "The assertion is not valid yet (check the clocks of the IdP and this server).")
    if not_on_or_after is not None and not_on_or_after + CLOCK_SKEW_SECONDS <= now:
        raise fail("expired", "The assertion has expired; please sign in again.")
    restrictions = conditions.findall("saml:AudienceRestriction", _NS)
    if not restrictions:
        raise fail("audience", "The assertion names no audience.")
    for restriction in restrictions:
        audiences = [(node.text or "").strip() for node in restriction.findall("saml:Audience", _NS)]
        if audience not in audiences:
            raise fail("audience", "The assertion is meant for another service provider (Audience).", f"{audiences}")
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
        raise fail("subject_confirmation", "The assertion has no bearer SubjectConfirmation.")
    order = ["destination", "in_response_to", "malformed", "expired", "not_yet_valid"]
    code, message = min(reasons, key=lambda reason: order.index(reason[0]))
    raise fail(code, message)


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
            raise fail(
                "unsolicited",
                "Sign-in must start here, not at the identity provider (IdP-initiated sign-in is off).",
            )
        if answered:
            # A response to a request that this browser session did not send.
            raise fail("in_response_to", "The response answers a sign-in request that was not started here.")
        return
    if not answered:
        if not allow_idp_initiated:
            raise fail("unsolicited", "The response does not answer the sign-in request that was started here.")
        return
    if answered != {expected_request_id}:
        raise fail("in_response_to", "The response answers a different sign-in request.")


def _diagnose_subject_confirmation(
    document: etree._Element, *, acs: str, in_response_to: str | None, now: int
) -> SSOError:
    try:
        _check_subject_confirmation(_the_assertion(document), acs=acs, in_response_to=in_response_to, now=now)
    except SSOError as exc:
        return exc
    return fail("subject_confirmation", "The assertion has no valid SubjectConfirmation.")


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
        raise fail("destination", "The response was meant for another address (Destination).")
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


# --- the Response -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VerifiedResponse:
    """A Response that passed every check: the identity, and what the replay store must remember."""

    assertion: Assertion
    assertion_id: str
    expires_at: datetime  # until when the assertion could still be accepted (with our skew)


@dataclass(frozen=True, slots=True)
class _SignedContent:
    """What python3-saml and our checks accepted, read from the signed document only."""

    subject: str
    name_id_format: str
    attributes: dict[str, list[str]]
    friendly: dict[str, list[str]]
    authn_contexts: list[str]
    assertion_id: str
    expiries: list[int]


def validate_response(
    connection: SSOConnection,
    *,
    xml: bytes,
    base_url: str,
    request_data: dict[str, Any],
    expected_request_id: str | None,
) -> VerifiedResponse:
    """Check a SAMLResponse document (already base64-decoded) and return the verified identity.

    ``request_data`` is python3-saml's description of the request it was
    posted to (https, http_host, script_name); ``expected_request_id`` is the
    AuthnRequest ID this browser session sent, or None. The checks are those
    listed in ``apps.sso.saml.binding.process_response``, except the replay
    store, which the caller applies with the returned ``assertion_id`` and
    ``expires_at``. Raises SSOError(code, message).
    """
    try:
        settings = onelogin_settings(connection, base_url=base_url)
    except SSOConfigError as exc:
        raise SSOError("configuration", f"This SAML connection is not configured correctly: {exc}") from exc
    acs = acs_url(connection, base_url=base_url)
    response = _parse(settings, xml)
    now = int(time.time())
    _library_checks(response, request_data=request_data, expected_request_id=expected_request_id, acs=acs, now=now)
    signed = _signed_content(
        response,
        acs=acs,
        audience=sp_entity_id(connection, base_url=base_url),
        expected_request_id=expected_request_id,
        allow_idp_initiated=flag(connection.config or {}, "allow_idp_initiated", False),
        now=now,
    )
    _check_subject(signed)
    return VerifiedResponse(
        assertion=_assertion(connection, signed),
        assertion_id=signed.assertion_id,
        expires_at=datetime.fromtimestamp(max(signed.expiries) + CLOCK_SKEW_SECONDS, tz=UTC),
    )


def _parse(settings: OneLogin_Saml2_Settings, xml: bytes) -> OneLogin_Saml2_Response:
    try:
        return OneLogin_Saml2_Response(settings, base64.b64encode(xml))
    except OneLogin_Saml2_Error as exc:  # an EncryptedAssertion and no SP key to decrypt it
        raise fail("unsupported", "Encrypted assertions are not supported; turn encryption off at the IdP.") from exc
    except Exception as exc:  # lxml / defusedxml errors: XMLSyntaxError, DTD or entity forbidden
        raise fail("malformed", "The SAML response is not well-formed XML.", repr(exc)) from exc


def _library_checks(
    response: OneLogin_Saml2_Response,
    *,
    request_data: dict[str, Any],
    expected_request_id: str | None,
    acs: str,
    now: int,
) -> None:
    """python3-saml's strict validation (schema, status, signatures, issuer, audience, times)."""
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
        raise fail("malformed", "The SAML response could not be read.", repr(exc)) from exc


def _signed_content(
    response: OneLogin_Saml2_Response,
    *,
    acs: str,
    audience: str,
    expected_request_id: str | None,
    allow_idp_initiated: bool,
    now: int,
) -> _SignedContent:
    """Our own checks on the accepted response, and the values read from it (signed content only)."""
    try:
        conditions_expiry = _check_conditions(_the_assertion(response.document), audience=audience, now=now)
        confirmation_expiry = _check_expected_request_and_recipient(
            response,
            acs=acs,
            expected_request_id=expected_request_id,
            allow_idp_initiated=allow_idp_initiated,
            now=now,
        )
        return _SignedContent(
            subject=(response.get_nameid() or "").strip(),
            name_id_format=response.get_nameid_format() or "",
            attributes={name: _text_values(values) for name, values in response.get_attributes().items()},
            friendly=_friendly_attributes(response),
            authn_contexts=[value.strip() for value in response.get_authn_contexts() if value and value.strip()],
            assertion_id=response.get_assertion_id(),
            expiries=[value for value in (conditions_expiry, confirmation_expiry) if value is not None],
        )
    except OneLogin_Saml2_ValidationError as exc:
        raise _translate(exc) from exc


def _check_subject(signed: _SignedContent) -> None:
    if not signed.subject:
        raise fail("subject", "The assertion has no NameID.")
    if signed.name_id_format == Saml2.NAMEID_TRANSIENT:
        raise fail(
            "subject",
            "The IdP sent a transient NameID, which changes at every sign-in; configure a persistent or e-mail NameID.",
        )
    if len(signed.subject) > _MAX_SUBJECT:
        raise fail("subject", "The NameID is too long.")
    if not signed.assertion_id or len(signed.assertion_id) > _MAX_ASSERTION_ID:
        raise fail("malformed", "The assertion ID is missing or too long.")


def _assertion(connection: SSOConnection, signed: _SignedContent) -> Assertion:
    """Map the signed attributes through the connection's attribute mapping."""
    attributes, friendly = signed.attributes, signed.friendly
    mapping = connection.attribute_mapping or {}
    email = _first(_values(attributes, friendly, mapping.get("email")))
    if not email and _EMAIL.match(signed.subject):
        email = signed.subject
    if not _EMAIL.match(email):
        raise fail(
            "email",
            "The IdP sent no e-mail address. Map the e-mail attribute (received: "
            + (", ".join(sorted(attributes)) or "none")
            + ") or use an e-mail NameID.",
        )
    amr = [
        value
        for name, values in attributes.items()
        if name.rstrip("/").rsplit("/", 1)[-1].lower() == AMR_ATTRIBUTE_SUFFIX
        for value in values
    ]
    mfa = any(_is_mfa_context(value) for value in signed.authn_contexts) or any(
        "multipleauthn" in value.lower() for value in amr
    )
    return Assertion(
        subject=signed.subject,
        email=email,
        first_name=_first(_values(attributes, friendly, mapping.get("first_name")))[:150],
        last_name=_first(_values(attributes, friendly, mapping.get("last_name")))[:150],
        groups=tuple(dict.fromkeys(_values(attributes, friendly, mapping.get("groups"))))[:_MAX_GROUPS],
        mfa_asserted=mfa,
        authn_context=", ".join(signed.authn_contexts + [f"amr:{value}" for value in amr]),
        attributes={
            **attributes,
            "_name_id": signed.subject,
            "_name_id_format": signed.name_id_format,
            "_authn_context": signed.authn_contexts,
        },
    )
