"""SAML IdP metadata and certificates: parse, fetch over the network safely, and refresh a connection.

Pure parsing (``parse_idp_metadata``, ``parse_certificate``,
``certificate_expiry``) raises ``SSOConfigError`` with a message an admin can
act on. ``fetch_idp_metadata`` is the only network access, through the one
SSRF-safe fetcher ``apps.core.netfetch`` (https, public addresses, pinned
connection, every redirect re-checked, size and time caps). ``refresh_connection_metadata`` is
the service the periodic Celery task calls.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from django.db import transaction
from django.utils import timezone
from lxml import etree

from apps.core import netfetch
from apps.sso.models import SSOConnection
from apps.sso.types import SSOConfigError

logger = logging.getLogger(__name__)

MAX_METADATA_BYTES = 1024 * 1024
MAX_CERTIFICATE_CHARS = 64 * 1024
MAX_REDIRECTS = 3
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
_XML_CONTENT_TYPES = ("xml",)  # application/samlmetadata+xml, application/xml, text/xml


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


def _looks_like_html(data: bytes) -> bool:
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
    data = xml.encode("utf-8") if isinstance(xml, str) else bytes(xml)
    if len(data) > MAX_METADATA_BYTES:
        raise SSOConfigError(f"The metadata is larger than {MAX_METADATA_BYTES // 1024} KiB; that is not IdP metadata.")
    if not data.strip():
        raise SSOConfigError("The metadata is empty.")
    if _looks_like_html(data):
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
    entity, descriptor = idps[0]

    entity_id = (entity.get("entityID") or "").strip()
    if not entity_id:
        raise SSOConfigError("The metadata has no entityID.")
    sso_url, sso_binding = _endpoint(descriptor, "SingleSignOnService")
    if not sso_url:
        raise SSOConfigError("The metadata has no SingleSignOnService with the HTTP-Redirect or HTTP-POST binding.")
    slo_url, _ = _endpoint(descriptor, "SingleLogoutService")

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
    if _looks_like_html(response.body):
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


# --- refreshing a connection ------------------------------------------------------------------


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


def saml_connections_to_refresh() -> list[int]:
    """Ids of the SAML connections that have a metadata URL and are not disabled."""
    return list(
        SSOConnection.objects.filter(kind=SSOConnection.Kind.SAML, config__has_key="metadata_url")
        .exclude(status=SSOConnection.Status.DISABLED)
        .exclude(config__metadata_url="")
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def refresh_connection_metadata(connection_id: int) -> str:
    """Fetch and apply the IdP metadata of one SAML connection; returns what happened.

    Returns ``"updated"`` (the IdP settings changed), ``"unchanged"``,
    ``"failed"`` (fetch or parse failed: the last good settings stay, the
    error is kept in ``config["metadata_error"]``) or ``"skipped"`` (no such
    SAML connection, no metadata URL, or the URL changed while fetching).

    The download happens before any lock is taken; the update then runs in one
    transaction holding ``select_for_update`` on the connection row. Audit
    events on the connection's tenant (actor: system): ``sso.metadata_refresh``
    (success or failure), ``sso.idp_certificate_changed`` when the set of
    signing certificates differs, and ``sso.idp_certificate_expiring`` (at
    most once a day per certificate) for a certificate that expires within 30
    days. Each of these two, and a failure (at most once a day per
    connection), also e-mails the connection's administrators once the
    transaction commits (``apps.sso.notices``).
    """
    from apps.audit.models import AuditEvent
    from apps.audit.services import Actor, record
    from apps.sso import notices

    connection = SSOConnection.objects.filter(pk=connection_id, kind=SSOConnection.Kind.SAML).first()
    url = (connection.config or {}).get("metadata_url", "") if connection else ""
    if not url:
        return "skipped"

    parsed: dict[str, Any] | None = None
    xml = ""
    error = ""
    try:
        xml = fetch_idp_metadata(url)
        parsed = parse_idp_metadata(xml)
    except SSOConfigError as exc:
        error = str(exc)

    actor = Actor.system("saml metadata refresh")
    now = timezone.now()
    with transaction.atomic():
        locked = SSOConnection.objects.select_for_update().filter(pk=connection_id).first()
        if locked is None or (locked.config or {}).get("metadata_url", "") != url:
            return "skipped"
        config = dict(locked.config or {})
        if parsed is None:
            config["metadata_error"] = error
            config["metadata_error_at"] = now.isoformat()
            notify = config.get("metadata_error_notified") != now.date().isoformat()
            if notify:
                config["metadata_error_notified"] = now.date().isoformat()  # one notice a day at most
            locked.config = config
            locked.updated_at = now
            locked.save(update_fields=["config", "updated_at"])
            record(
                "sso.metadata_refresh",
                tenant=locked.tenant_id,
                actor=actor,
                target=locked,
                result=AuditEvent.Result.FAILURE,
                metadata={"url": url, "error": error},
            )
            logger.warning("saml metadata refresh failed", extra={"connection": connection_id, "error": error})
            if notify:
                notices.enqueue(
                    connection_id=locked.pk, event=notices.METADATA_FAILED, detail={"url": url, "error": error}
                )
            return "failed"

        new = metadata_config(parsed)
        before = {key: config.get(key) for key in new}
        changed = sorted(key for key in new if key != "metadata_valid_until" and before[key] != new[key])
        old_fingerprints = _fingerprints(config.get("idp_x509_certs") or [])
        new_fingerprints = _fingerprints(new["idp_x509_certs"])
        config.update(new)
        config["metadata_xml"] = xml
        config["metadata_fetched_at"] = now.isoformat()
        config.pop("metadata_error", None)
        config.pop("metadata_error_at", None)

        expiring = []
        warned = dict(config.get("idp_cert_expiry_warned") or {})
        for pem in new["idp_x509_certs"]:
            expires = certificate_expiry(pem)
            fingerprint = certificate_fingerprint(pem)
            if expires - now <= CERT_EXPIRY_WARNING and warned.get(fingerprint) != now.date().isoformat():
                warned[fingerprint] = now.date().isoformat()
                expiring.append((fingerprint, expires))
        config["idp_cert_expiry_warned"] = {fp: day for fp, day in warned.items() if fp in new_fingerprints}

        locked.config = config
        locked.updated_at = now
        locked.save(update_fields=["config", "updated_at"])
        record(
            "sso.metadata_refresh",
            tenant=locked.tenant_id,
            actor=actor,
            target=locked,
            metadata={"url": url, "changed": changed},
        )
        if old_fingerprints != new_fingerprints:
            difference = {
                "added": sorted(new_fingerprints - old_fingerprints),
                "removed": sorted(old_fingerprints - new_fingerprints),
            }
            # Rotation from the tested metadata URL is normal and kept (identity links stay), but it
            # changes whose signatures are trusted: high severity, and the admins are told (#7, item 3).
            record(
                "sso.idp_certificate_changed",
                tenant=locked.tenant_id,
                actor=actor,
                target=locked,
                metadata={**difference, "severity": "high", "url": url},
            )
            notices.enqueue(connection_id=locked.pk, event=notices.CERTIFICATE_CHANGED, detail=difference)
        for fingerprint, expires in expiring:
            warning = {"fingerprint": fingerprint, "not_after": expires.isoformat(), "days_left": (expires - now).days}
            record(
                "sso.idp_certificate_expiring", tenant=locked.tenant_id, actor=actor, target=locked, metadata=warning
            )
            notices.enqueue(connection_id=locked.pk, event=notices.CERTIFICATE_EXPIRING, detail=warning)
    return "updated" if changed else "unchanged"


def _fingerprints(pems: list[str]) -> set[str]:
    result = set()
    for pem in pems:
        try:
            result.add(certificate_fingerprint(pem))
        except SSOConfigError:
            result.add("unreadable:" + hashlib.sha256(pem.encode()).hexdigest()[:16])
    return result
