"""SAML IdP metadata and certificates, parsed: pure functions, no network, no database.

``parse_idp_metadata`` reads one identity provider's settings from its
metadata document; ``parse_certificate`` normalises a pasted or published
X.509 certificate to PEM; ``certificate_expiry`` and
``certificate_fingerprint`` describe one; ``metadata_config`` turns a parsed
document into ``SSOConnection.config`` keys. Every refusal is an
``SSOConfigError`` with a message an administrator can act on. Downloading
metadata is HTTP work and lives in ``apps.sso.saml.binding``; applying it to a
connection is a service (``apps.sso.services.metadata_refresh``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.utils import timezone
from lxml import etree

from apps.sso.types import SSOConfigError

MAX_METADATA_BYTES = 1024 * 1024
MAX_CERTIFICATE_CHARS = 64 * 1024
CERT_EXPIRY_WARNING = timedelta(days=30)

NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
SAML2_PROTOCOL = "urn:oasis:names:tc:SAML:2.0:protocol"
BINDING_REDIRECT = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
BINDING_POST = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
_NS = {"md": NS_MD, "ds": NS_DS}

_PEM_CERT = re.compile(r"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>")
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])", re.I | re.S)


# --- certificates -----------------------------------------------------------------------------


def parse_certificate(pem_or_base64: str) -> str:
    """Normalise one X.509 certificate (PEM, or the bare base64 metadata and IdP consoles show) to PEM.

    Whitespace and line breaks inside the base64 are ignored. Raises
    SSOConfigError if the text holds no certificate, several certificates, a
    private key, or bytes that do not parse as X.509.
    """
    text = (pem_or_base64 or "").strip()
    if not text:
        raise SSOConfigError("The certificate is empty.")
    if len(text) > MAX_CERTIFICATE_CHARS:
        raise SSOConfigError("The certificate is too long to be a single X.509 certificate.")
    if "PRIVATE KEY" in text:
        raise SSOConfigError("This is a private key. Paste the IdP's public signing certificate instead.")
    blocks = _PEM_CERT.findall(text)
    if len(blocks) > 1:
        raise SSOConfigError("Paste one certificate at a time (this text holds several).")
    if blocks:
        body = blocks[0]
    elif "-----BEGIN" in text:
        raise SSOConfigError("This PEM block is not a certificate (expected “BEGIN CERTIFICATE”).")
    else:
        body = text
    body = re.sub(r"\s+", "", body)
    try:
        der = base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SSOConfigError("The certificate is not valid base64 or PEM.") from exc
    try:
        cert = x509.load_der_x509_certificate(der)
    except ValueError as exc:
        raise SSOConfigError("The certificate could not be read as an X.509 certificate.") from exc
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def certificate_expiry(pem: str) -> datetime:
    """The certificate's notAfter as an aware UTC datetime. Raises SSOConfigError if it does not parse."""
    return _load_pem(pem).not_valid_after_utc


def certificate_fingerprint(pem: str) -> str:
    """SHA-256 fingerprint of the certificate (hex, colon-separated, upper case), for admins and audit."""
    digest = hashlib.sha256(_load_pem(pem).public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


def _load_pem(pem: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(parse_certificate(pem).encode())
    except ValueError as exc:  # pragma: no cover - parse_certificate already validated it
        raise SSOConfigError("The certificate could not be read as an X.509 certificate.") from exc


# --- metadata parsing -------------------------------------------------------------------------


def _safe_parser() -> etree.XMLParser:
    # A new parser per call: lxml parsers must not be shared between threads.
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def looks_like_html(data: bytes) -> bool:
    """True when ``data`` starts like an HTML page (an IdP sign-in page given instead of metadata)."""
    return bool(_HTML_START.match(data[:4096]))


def parse_idp_metadata(xml: str | bytes) -> dict[str, Any]:
    """Read the settings of one SAML 2.0 identity provider from its metadata.

    Returns ``{"entity_id", "sso_url", "sso_binding", "slo_url", "certs",
    "valid_until"}``: the SingleSignOnService prefers the HTTP-Redirect binding
    and falls back to HTTP-POST (``sso_binding`` says which); ``slo_url`` is ""
    when the IdP has none; ``certs`` are the PEM signing certificates (a
    KeyDescriptor with ``use="signing"`` or without ``use``), de-duplicated, in
    document order; ``valid_until`` is an aware datetime or None.

    The input is capped at 1 MiB and parsed without DTDs, entities or network
    access. An EntitiesDescriptor is accepted when it holds exactly one IdP.
    Raises SSOConfigError (HTML page, not XML, not SAML metadata, no
    IDPSSODescriptor, no SAML 2.0 SSO endpoint, no signing certificate, expired).
    """
    root = _metadata_root(xml)
    entity, descriptor = _the_idp(root)

    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id:
        raise SSOConfigError("The metadata has no entityID.")
    sso_url, sso_binding = _endpoint(descriptor, "SingleSignOnService")
    if not sso_url:
        raise SSOConfigError("The metadata has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding.")
    slo_url, _ = _endpoint(descriptor, "SingleLogoutService")
    certs = _signing_certificates(descriptor)

    valid_until = _valid_until(entity, root)
    if valid_until is not None and valid_until <= timezone.now():
        raise SSOConfigError(f"The metadata expired on {valid_until:%Y-%m-%d %H:%M} UTC (validUntil).")
    return {
        "entity_id": entity_id,
        "sso_url": sso_url,
        "sso_binding": sso_binding,
        "slo_url": slo_url,
        "certs": certs,
        "valid_until": valid_until,
    }


def _metadata_root(xml: str | bytes) -> etree._Element:
    """The document's root element, parsed safely; refuses what is too big, empty, HTML or has a DOCTYPE."""
    data = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
    if len(data) > MAX_METADATA_BYTES:
        raise SSOConfigError(f"The metadata is larger than {MAX_METADATA_BYTES // 1024} KiB; that is not IdP metadata.")
    if not data.strip():
        raise SSOConfigError("The metadata is empty.")
    if looks_like_html(data):
        raise SSOConfigError(
            "This is an HTML page, not SAML metadata. Use the IdP's metadata URL or download the metadata XML file."
        )
    if isinstance(xml, str):
        # The text is already decoded: an encoding declaration would contradict it (and lxml refuses it).
        data = _XML_DECLARATION.sub("", xml, count=1).encode("utf-8")
    try:
        root = etree.fromstring(data, _safe_parser())  # the parser forbids entities, DTDs and network
    except etree.XMLSyntaxError as exc:
        raise SSOConfigError("The metadata is not well-formed XML.") from exc
    if root is None:
        raise SSOConfigError("The metadata is not well-formed XML.")
    if root.getroottree().docinfo.doctype:
        raise SSOConfigError("The metadata has a DOCTYPE declaration; SAML metadata never needs one.")
    return root


def _the_idp(root: etree._Element) -> tuple[etree._Element, etree._Element]:
    """The one SAML 2.0 identity provider in the document: (EntityDescriptor, IDPSSODescriptor)."""
    if root.tag == f"{{{NS_MD}}}EntityDescriptor":
        entities = [root]
    elif root.tag == f"{{{NS_MD}}}EntitiesDescriptor":
        entities = root.findall(".//md:EntityDescriptor", _NS)
    else:
        raise SSOConfigError("This XML is not SAML 2.0 metadata (expected an EntityDescriptor).")

    idps = [
        (entity, descriptor)
        for entity in entities
        for descriptor in entity.findall("md:IDPSSODescriptor", _NS)
        if SAML2_PROTOCOL in (descriptor.get("protocolSupportEnumeration") or "").split()
    ]
    if not idps:
        if any(entity.find("md:IDPSSODescriptor", _NS) is not None for entity in entities):
            raise SSOConfigError("The identity provider in this metadata does not support SAML 2.0.")
        raise SSOConfigError(
            "The metadata describes no identity provider (no IDPSSODescriptor); "
            "is it the metadata of a service provider?"
        )
    if len({entity.get("entityID") for entity, _ in idps}) > 1:
        raise SSOConfigError("The metadata describes several identity providers; use the metadata of just one.")
    return idps[0]


def _signing_certificates(descriptor: etree._Element) -> list[str]:
    """PEM signing certificates (``use="signing"`` or no ``use``), de-duplicated, in document order."""
    certs: list[str] = []
    for key_descriptor in descriptor.findall("md:KeyDescriptor", _NS):
        if key_descriptor.get("use") not in (None, "", "signing"):
            continue
        for node in key_descriptor.findall("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS):
            pem = parse_certificate(node.text or "")
            if pem not in certs:
                certs.append(pem)
    if not certs:
        raise SSOConfigError("The metadata has no signing certificate (KeyDescriptor with an X509Certificate).")
    return certs


def _endpoint(descriptor: etree._Element, tag: str) -> tuple[str, str]:
    """The Location of the first ``tag`` with the Redirect binding, else the first with POST."""
    found: dict[str, str] = {}
    for node in descriptor.findall(f"md:{tag}", _NS):
        binding, location = node.get("Binding"), (node.get("Location") or "").strip()
        if binding in (BINDING_REDIRECT, BINDING_POST) and location and binding not in found:
            if urlsplit(location).scheme not in ("https", "http"):
                raise SSOConfigError(f"The {tag} location is not an http(s) URL.")
            found[binding] = location
    for binding in (BINDING_REDIRECT, BINDING_POST):
        if binding in found:
            return found[binding], binding
    return "", ""


def _valid_until(entity: etree._Element, root: etree._Element) -> datetime | None:
    values = [node.get("validUntil") for node in (entity, root) if node.get("validUntil")]
    parsed = []
    for value in values:
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise SSOConfigError(f"The metadata's validUntil {value!r} is not a date.") from exc
        parsed.append(moment if moment.tzinfo else moment.replace(tzinfo=UTC))
    return min(parsed) if parsed else None


# --- connection settings ----------------------------------------------------------------------


def metadata_config(parsed: dict[str, Any]) -> dict[str, Any]:
    """The ``SSOConnection.config`` keys that a parsed metadata document sets (JSON-safe)."""
    valid_until = parsed.get("valid_until")
    return {
        "idp_entity_id": parsed["entity_id"],
        "idp_sso_url": parsed["sso_url"],
        "idp_sso_binding": parsed.get("sso_binding", BINDING_REDIRECT),
        "idp_slo_url": parsed.get("slo_url", ""),
        "idp_x509_certs": list(parsed["certs"]),
        "metadata_valid_until": valid_until.isoformat() if valid_until else None,
    }


def certificate_fingerprints(pems: list[str]) -> set[str]:
    """The fingerprints of ``pems``; an unreadable one counts by a hash of its text (it still differs)."""
    result = set()
    for pem in pems:
        try:
            result.add(certificate_fingerprint(pem))
        except SSOConfigError:
            result.add("unreadable:" + hashlib.sha256(pem.encode()).hexdigest()[:16])
    return result
