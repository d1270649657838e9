"""SAML over HTTP: the AuthnRequest redirect, the POST to the ACS, the logout exchange, metadata downloads.

What comes in from the browser is read and size-checked here and handed to
``apps.sso.saml.protocol``; what goes out (the redirect to the IdP, the
LogoutResponse, the metadata request through the one SSRF-safe fetcher
``apps.core.netfetch``) is built here. The replay store
(``apps.sso.replay``) is applied last, once the response is verified.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.errors import OneLogin_Saml2_Error
from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from apps.core import netfetch
from apps.sso import replay
from apps.sso.models import SSOConnection
from apps.sso.saml.metadata import MAX_METADATA_BYTES, looks_like_html
from apps.sso.saml.protocol import fail, validate_response
from apps.sso.saml.sp import onelogin_settings, site_base, sp_settings
from apps.sso.types import Assertion, SSOConfigError, SSOError

logger = logging.getLogger(__name__)

# A SAMLResponse (base64) larger than this is refused before it is decoded or parsed.
MAX_RESPONSE_BASE64 = 512 * 1024
# The SAML bindings specification limits RelayState to 80 bytes.
MAX_RELAY_STATE_BYTES = 80
MAX_REDIRECTS = 3
_XML_CONTENT_TYPES = ("xml",)  # application/samlmetadata+xml, application/xml, text/xml


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
    settings = onelogin_settings(connection, base_url=base_url)
    host = urlsplit(site_base(base_url)).netloc
    auth = OneLogin_Saml2_Auth(
        {"https": "on", "http_host": host, "script_name": "", "get_data": {}, "post_data": {}}, settings
    )
    url = auth.login(return_to=relay_state)
    return url, auth.get_last_request_id()


# --- Response ---------------------------------------------------------------------------------


def read_saml_response(post_data: Mapping[str, Any]) -> bytes:
    """The posted SAMLResponse, size-checked and base64-decoded; SSOError unless it looks like XML."""
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
    xml = read_saml_response(post_data)
    verified = validate_response(
        connection,
        xml=xml,
        base_url=base_url,
        request_data=_request_data(request_host=request_host, request_path=request_path, https=https),
        expected_request_id=expected_request_id,
    )
    if not replay.remember(connection=connection, assertion_id=verified.assertion_id, expires_at=verified.expires_at):
        raise SSOError("replay", "This sign-in response was already used; please sign in again.")
    return verified.assertion


def _request_data(
    *, request_host: str, request_path: str, https: bool, get_data: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """python3-saml's description of the request a message arrived with."""
    return {
        "https": "on" if https else "off",
        "http_host": request_host,
        "script_name": request_path,
        "get_data": dict(get_data or {}),
        "post_data": {},
    }


# --- Single logout ----------------------------------------------------------------------------

_LOGOUT_KEYS = ("SAMLRequest", "SAMLResponse", "RelayState", "SigAlg", "Signature")


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
        raise fail("logout", "No SAML LogoutRequest or LogoutResponse was sent.")
    if any(len(str(get_data.get(name) or "")) > MAX_RESPONSE_BASE64 for name in ("SAMLRequest", "SAMLResponse")):
        raise fail("logout", "The logout message is too large.")
    settings, idp_has_slo = _logout_settings(connection, base_url=base_url)
    query = {key: str(get_data[key]) for key in _LOGOUT_KEYS if key in get_data}
    request_data = _request_data(request_host=request_host, request_path=request_path, https=https, get_data=query)
    auth = OneLogin_Saml2_Auth(request_data, settings)
    try:
        reply_url = auth.process_slo(keep_local_session=True) or ""
    except Exception as exc:  # python3-saml raises bare Exceptions on undecodable input
        logger.info("saml logout refused", exc_info=True)
        raise fail("logout", "The logout message could not be read.", repr(exc)) from exc
    errors = auth.get_errors()
    if errors:
        raise fail("logout", "The logout message was refused.", f"{errors} {auth.get_last_error_reason()}")
    if "SAMLRequest" not in query:
        return "", ""
    try:
        name_id = str(OneLogin_Saml2_Logout_Request.get_nameid(auth.get_last_request_xml()) or "")
    except Exception:  # noqa: BLE001 -- a valid request without a readable NameID ends nothing more
        name_id = ""
    return name_id, reply_url if idp_has_slo else ""


def _logout_settings(connection: SSOConnection, *, base_url: str) -> tuple[OneLogin_Saml2_Settings, bool]:
    """python3-saml settings for logout messages (signed, always) and whether the IdP has an SLO URL."""
    try:
        raw = sp_settings(connection, base_url=base_url)
    except SSOConfigError as exc:
        raise SSOError("configuration", f"This SAML connection is not configured correctly: {exc}") from exc
    raw["security"]["wantMessagesSigned"] = True  # logout messages: signed, always
    try:
        settings = OneLogin_Saml2_Settings(raw)
    except OneLogin_Saml2_Error as exc:
        raise SSOError("configuration", f"The SAML settings are not usable: {exc}") from exc
    return settings, bool(str(raw["idp"].get("singleLogoutService", {}).get("url") or ""))


# --- fetching ---------------------------------------------------------------------------------

# The fetcher's refusals in the words this page has always used (admins and tests know them).
_FETCH_MESSAGES = {
    "invalid_url": "must use https://",
    "scheme": "must use https://",
    "plain_http": "must use https://",
    "userinfo": "must be a plain https:// URL with a host name",
    "address": "points to a private or local network address; it must be public",
}


def fetch_idp_metadata(url: str, *, timeout: float = 10) -> str:
    """Download IdP metadata from ``url`` and return it as text (not yet parsed: see ``parse_idp_metadata``).

    Goes through ``apps.core.netfetch`` (https on port 443 only, public
    addresses only, the connection pinned to the address that was checked,
    TLS verified for the host name; plain http and any port to loopback only
    when ``settings.DEBUG`` or ``settings.SSO_ALLOW_INSECURE_LOOPBACK``; private
    networks only with ``settings.SSO_FETCH_ALLOW_PRIVATE``). Up to three
    redirects are followed, each checked the same way. ``timeout`` bounds the
    whole download; the body is capped at 1 MiB while streaming, uncompressed.
    The response must be 200 with an XML content type (or none) and must not
    be HTML. TLS is verified against the public roots, or the bundle at
    ``settings.SSO_METADATA_CA_BUNDLE`` if set. Raises SSOConfigError with a
    message for the admin on any failure.
    """
    try:
        response = netfetch.fetch(
            "GET",
            url,
            max_bytes=MAX_METADATA_BYTES,
            timeout=timeout,
            max_redirects=MAX_REDIRECTS,
            headers={"Accept": "application/samlmetadata+xml, application/xml, text/xml"},
        )
    except netfetch.FetchError as exc:
        raise SSOConfigError(f"The metadata URL {_FETCH_MESSAGES.get(exc.code, exc.message)}.") from exc
    if response.status != 200:
        raise SSOConfigError(f"The metadata URL answered HTTP {response.status}, not 200.")
    content_type = response.header("Content-Type").split(";", 1)[0].strip().lower()
    if "html" in content_type:
        raise SSOConfigError(
            "The metadata URL returned an HTML page, not SAML metadata (is it the IdP's sign-in page?)."
        )
    if content_type and not any(kind in content_type for kind in _XML_CONTENT_TYPES):
        raise SSOConfigError(f"The metadata URL returned {content_type}, not XML.")
    if looks_like_html(response.body):
        raise SSOConfigError("The metadata URL returned an HTML page, not SAML metadata.")
    return _decode(response.body)


def _decode(body: bytes) -> str:
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    match = re.match(rb"^\s*<\?xml[^>]*encoding=[\"']([A-Za-z0-9._-]+)[\"']", body)
    encoding = match.group(1).decode() if match else "utf-8"
    try:
        return body.decode(encoding)
    except (LookupError, UnicodeDecodeError) as exc:
        raise SSOConfigError(f"The metadata is not valid {encoding} text.") from exc
