"""Test utilities for SAML: an IdP key pair, and real, signed SAML Responses.

Nothing here is mocked: keys come from ``cryptography``, responses are built
with lxml and signed with python-xmlsec (enveloped signature, exclusive c14n,
rsa-sha256), so python3-saml verifies them exactly as it would a real IdP's.
Timestamps are explicit and relative to ``now`` so time-dependent tests are
deterministic enough (seconds matter, not milliseconds).
"""

from __future__ import annotations

import base64
import functools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import xmlsec
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree

NS_SAML = "urn:oasis:names:tc:SAML:2.0:assertion"
NS_SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"
NS_DS = "http://www.w3.org/2000/09/xmldsig#"
NS_XS = "http://www.w3.org/2001/XMLSchema"
NS_XSI = "http://www.w3.org/2001/XMLSchema-instance"
NS_MD = "urn:oasis:names:tc:SAML:2.0:metadata"
NSMAP = {"saml": NS_SAML, "samlp": NS_SAMLP, "ds": NS_DS, "xs": NS_XS, "xsi": NS_XSI}

BASE_URL = "https://bastion.example.com"
REQUEST_HOST = "bastion.example.com"
IDP_ENTITY_ID = "https://idp.example.test/saml/metadata"
IDP_SSO_URL = "https://idp.example.test/saml/sso"
IDP_SLO_URL = "https://idp.example.test/saml/slo"

STATUS_SUCCESS = "urn:oasis:names:tc:SAML:2.0:status:Success"
AC_PASSWORD = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"
AC_MFA = "urn:oasis:names:tc:SAML:2.0:ac:classes:MultiFactor"
NAMEID_EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
NAMEID_PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
NAMEID_TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"


# --- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPair:
    """An RSA private key and its self-signed certificate, both PEM."""

    key_pem: bytes
    cert_pem: str

    @property
    def cert_base64(self) -> str:
        """The certificate as bare base64 (what metadata and admin consoles show)."""
        body = [line for line in self.cert_pem.strip().splitlines() if not line.startswith("-----")]
        return "".join(body)


def make_key_pair(
    common_name: str = "idp.example.test",
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> KeyPair:
    """Generate a 2048-bit RSA key and a self-signed certificate for ``common_name``."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = datetime.now(UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=1))
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return KeyPair(
        key_pem=key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
        cert_pem=cert.public_bytes(serialization.Encoding.PEM).decode(),
    )


@functools.cache
def idp_keys() -> KeyPair:
    """The IdP's signing key of the test session (generated once: RSA generation is slow)."""
    return make_key_pair("idp.example.test")


@functools.cache
def other_keys() -> KeyPair:
    """A second, unrelated key pair: "signed, but by somebody else"."""
    return make_key_pair("attacker.example.test")


# --- responses --------------------------------------------------------------------------------


def saml_time(value: datetime) -> str:
    """A SAML xs:dateTime in UTC with a Z suffix."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    """An xs:ID (must not start with a digit)."""
    return "_" + uuid.uuid4().hex


@dataclass
class ResponseSpec:
    """Everything a test may want to vary in a Response. Offsets are seconds relative to ``now``."""

    acs_url: str
    audience: str
    name_id: str = "ada@acme.example"
    name_id_format: str = NAMEID_EMAIL
    issuer: str = IDP_ENTITY_ID
    destination: str | None = None  # defaults to acs_url; "" omits the attribute
    recipient: str | None = None  # defaults to acs_url; "" omits the attribute
    in_response_to: str | None = None
    attributes: dict[str, list[str]] = field(default_factory=dict)
    friendly_names: dict[str, str] = field(default_factory=dict)  # attribute Name -> FriendlyName
    authn_context: str = AC_PASSWORD
    now: datetime | None = None
    not_before: int | None = -30  # Conditions NotBefore offset; None omits it
    not_on_or_after: int | None = 300  # Conditions NotOnOrAfter offset; None omits it
    scd_not_on_or_after: int | None = 300  # SubjectConfirmationData NotOnOrAfter offset; None omits it
    assertion_id: str = field(default_factory=new_id)
    response_id: str = field(default_factory=new_id)
    status: str = STATUS_SUCCESS


def _sub(parent: etree._Element, ns: str, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{ns}}}{tag}", {k: v for k, v in attrs.items() if v is not None})
    if text is not None:
        el.text = text
    return el


def build_assertion(spec: ResponseSpec) -> etree._Element:
    """A saml:Assertion element (unsigned) as a mainstream IdP would send it."""
    now = spec.now or datetime.now(UTC)

    def at(offset: int | None) -> str | None:
        return None if offset is None else saml_time(now + timedelta(seconds=offset))

    assertion = etree.Element(
        f"{{{NS_SAML}}}Assertion",
        {"ID": spec.assertion_id, "Version": "2.0", "IssueInstant": saml_time(now)},
        nsmap={"saml": NS_SAML, "xs": NS_XS, "xsi": NS_XSI},
    )
    _sub(assertion, NS_SAML, "Issuer", spec.issuer)
    subject = _sub(assertion, NS_SAML, "Subject")
    _sub(subject, NS_SAML, "NameID", spec.name_id, Format=spec.name_id_format)
    confirmation = _sub(subject, NS_SAML, "SubjectConfirmation", Method="urn:oasis:names:tc:SAML:2.0:cm:bearer")
    recipient = spec.acs_url if spec.recipient is None else spec.recipient
    _sub(
        confirmation,
        NS_SAML,
        "SubjectConfirmationData",
        NotOnOrAfter=at(spec.scd_not_on_or_after),
        Recipient=recipient or None,
        InResponseTo=spec.in_response_to,
    )
    conditions = _sub(
        assertion, NS_SAML, "Conditions", NotBefore=at(spec.not_before), NotOnOrAfter=at(spec.not_on_or_after)
    )
    restriction = _sub(conditions, NS_SAML, "AudienceRestriction")
    _sub(restriction, NS_SAML, "Audience", spec.audience)
    statement = _sub(assertion, NS_SAML, "AuthnStatement", AuthnInstant=saml_time(now), SessionIndex=new_id())
    context = _sub(statement, NS_SAML, "AuthnContext")
    _sub(context, NS_SAML, "AuthnContextClassRef", spec.authn_context)
    if spec.attributes:
        attribute_statement = _sub(assertion, NS_SAML, "AttributeStatement")
        for name, values in spec.attributes.items():
            attribute = _sub(
                attribute_statement,
                NS_SAML,
                "Attribute",
                Name=name,
                NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:unspecified",
                FriendlyName=spec.friendly_names.get(name),
            )
            for value in values:
                _sub(attribute, NS_SAML, "AttributeValue", value, **{f"{{{NS_XSI}}}type": "xs:string"})
    return assertion


def build_response(spec: ResponseSpec, assertion: etree._Element | None = None) -> etree._Element:
    """A samlp:Response around ``assertion`` (built from ``spec`` if not given); nothing signed yet."""
    now = spec.now or datetime.now(UTC)
    destination = spec.acs_url if spec.destination is None else spec.destination
    attrs = {"ID": spec.response_id, "Version": "2.0", "IssueInstant": saml_time(now)}
    if destination:
        attrs["Destination"] = destination
    if spec.in_response_to:
        attrs["InResponseTo"] = spec.in_response_to
    response = etree.Element(f"{{{NS_SAMLP}}}Response", attrs, nsmap={"samlp": NS_SAMLP, "saml": NS_SAML})
    _sub(response, NS_SAML, "Issuer", spec.issuer)
    status = _sub(response, NS_SAMLP, "Status")
    _sub(status, NS_SAMLP, "StatusCode", Value=spec.status)
    response.append(assertion if assertion is not None else build_assertion(spec))
    return response


def sign(element: etree._Element, keys: KeyPair | None = None, *, sha1: bool = False) -> etree._Element:
    """Sign ``element`` (a Response or an Assertion) in place: enveloped, exc-c14n, rsa-sha256.

    The ds:Signature goes right after the element's saml:Issuer, where the
    schema wants it. Sign the assertion before the response when signing both.
    ``sha1`` signs with the deprecated rsa-sha1 / sha1 instead.
    """
    keys = keys or idp_keys()
    method = xmlsec.Transform.RSA_SHA1 if sha1 else xmlsec.Transform.RSA_SHA256
    digest = xmlsec.Transform.SHA1 if sha1 else xmlsec.Transform.SHA256
    signature = xmlsec.template.create(element, xmlsec.Transform.EXCL_C14N, method, ns="ds")
    issuer = element.find(f"{{{NS_SAML}}}Issuer")
    element.insert(element.index(issuer) + 1 if issuer is not None else 0, signature)
    reference = xmlsec.template.add_reference(signature, digest, uri="#" + element.get("ID"))
    xmlsec.template.add_transform(reference, xmlsec.Transform.ENVELOPED)
    xmlsec.template.add_transform(reference, xmlsec.Transform.EXCL_C14N)
    key_info = xmlsec.template.ensure_key_info(signature)
    xmlsec.template.add_x509_data(key_info)
    xmlsec.tree.add_ids(element.getroottree().getroot(), ["ID"])
    context = xmlsec.SignatureContext()
    key = xmlsec.Key.from_memory(keys.key_pem, xmlsec.KeyFormat.PEM, None)
    key.load_cert_from_memory(keys.cert_pem.encode(), xmlsec.KeyFormat.PEM)
    context.key = key
    context.sign(signature)
    return element


def signed_response(
    spec: ResponseSpec,
    *,
    sign_assertion: bool = True,
    sign_response: bool = False,
    keys: KeyPair | None = None,
) -> etree._Element:
    """Build a Response and sign its assertion and/or itself."""
    assertion = build_assertion(spec)
    response = build_response(spec, assertion)
    if sign_assertion:
        sign(assertion, keys)
    if sign_response:
        sign(response, keys)
    return response


def to_xml(element: etree._Element) -> bytes:
    """Serialise without re-indenting (whitespace inside signed content must not change)."""
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


def encode(document: etree._Element | bytes | str) -> str:
    """The SAMLResponse form value (base64 of the XML)."""
    if isinstance(document, etree._Element):
        document = to_xml(document)
    if isinstance(document, str):
        document = document.encode()
    return base64.b64encode(document).decode()


def parse(xml: bytes) -> etree._Element:
    """Parse XML the tests built themselves (trusted input)."""
    return etree.fromstring(xml, etree.XMLParser(remove_blank_text=False, resolve_entities=False))


# --- metadata ---------------------------------------------------------------------------------


def idp_metadata_xml(
    *,
    entity_id: str = IDP_ENTITY_ID,
    sso_url: str = IDP_SSO_URL,
    slo_url: str | None = IDP_SLO_URL,
    certs: list[str] | None = None,
    bindings: tuple[str, ...] = ("HTTP-POST", "HTTP-Redirect"),
    valid_until: datetime | None = None,
    encryption_cert: str | None = None,
) -> str:
    """IdP metadata as Okta/Entra publish it: one EntityDescriptor with an IDPSSODescriptor."""
    certs = [idp_keys().cert_base64] if certs is None else certs
    key_descriptors = "".join(
        f'<md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert}'
        "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        for cert in certs
    )
    if encryption_cert:
        key_descriptors += (
            '<md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>'
            f"{encryption_cert}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
        )
    slo = (
        f'<md:SingleLogoutService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="{slo_url}"/>'
        if slo_url
        else ""
    )
    sso = "".join(
        f'<md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:{binding}" '
        f'Location="{sso_url}{"" if binding == "HTTP-Redirect" else "/post"}"/>'
        for binding in bindings
    )
    valid = f' validUntil="{saml_time(valid_until)}"' if valid_until else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<md:EntityDescriptor xmlns:md="{NS_MD}" xmlns:ds="{NS_DS}" entityID="{entity_id}"{valid}>'
        '<md:IDPSSODescriptor WantAuthnRequestsSigned="false" '
        'protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">'
        f"{key_descriptors}"
        "<md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress</md:NameIDFormat>"
        f"{slo}{sso}"
        "</md:IDPSSODescriptor></md:EntityDescriptor>"
    )


# --- connections and posting -----------------------------------------------------------------

REQUEST_ID = "ONELOGIN_0123456789abcdef0123456789abcdef01234567"


def make_connection(*, tenant=None, attribute_mapping: dict[str, str] | None = None, **config):
    """A saved SAML SSOConnection trusting ``idp_keys()`` (config keys overridable)."""
    from apps.sso.models import SSOConnection
    from apps.sso.saml import ATTRIBUTE_PRESETS
    from tests.factories import TenantFactory

    base = {
        "idp_entity_id": IDP_ENTITY_ID,
        "idp_sso_url": IDP_SSO_URL,
        "idp_slo_url": IDP_SLO_URL,
        "idp_x509_certs": [idp_keys().cert_pem],
    }
    base.update(config)
    return SSOConnection.objects.create(
        tenant=tenant or TenantFactory(),
        kind=SSOConnection.Kind.SAML,
        name="Okta",
        config=base,
        attribute_mapping=ATTRIBUTE_PRESETS["okta"] if attribute_mapping is None else attribute_mapping,
    )


def spec_for(connection, **overrides) -> ResponseSpec:
    """A ResponseSpec aimed at ``connection``'s ACS and entity id, answering REQUEST_ID."""
    from apps.sso.saml import acs_url, sp_entity_id

    values = {
        "acs_url": acs_url(connection, base_url=BASE_URL),
        "audience": sp_entity_id(connection, base_url=BASE_URL),
        "in_response_to": REQUEST_ID,
        "attributes": {
            "email": ["ada@acme.example"],
            "firstName": ["Ada"],
            "lastName": ["Lovelace"],
            "groups": ["engineering", "admins"],
        },
    }
    values.update(overrides)
    return ResponseSpec(**values)


def post(connection, document, *, expected_request_id: str | None = REQUEST_ID, path: str | None = None):
    """Call ``process_response`` as the ACS view would, for a document (element, bytes or base64 str)."""
    from urllib.parse import urlsplit

    from apps.sso.saml import acs_url, process_response

    value = document if isinstance(document, str) else encode(document)
    return process_response(
        connection,
        base_url=BASE_URL,
        post_data={"SAMLResponse": value},
        request_host=REQUEST_HOST,
        request_path=path or urlsplit(acs_url(connection, base_url=BASE_URL)).path,
        https=True,
        expected_request_id=expected_request_id,
    )


# --- single logout ----------------------------------------------------------------------------


def logout_request_xml(connection, *, name_id: str = "ada@acme.example", issuer: str = IDP_ENTITY_ID) -> str:
    """A LogoutRequest from the IdP to ``connection``'s SLS URL."""
    from apps.sso.saml import sls_url

    now = datetime.now(UTC)
    return (
        f'<samlp:LogoutRequest xmlns:samlp="{NS_SAMLP}" xmlns:saml="{NS_SAML}" ID="{new_id()}" Version="2.0" '
        f'IssueInstant="{saml_time(now)}" NotOnOrAfter="{saml_time(now + timedelta(minutes=5))}" '
        f'Destination="{sls_url(connection, base_url=BASE_URL)}">'
        f"<saml:Issuer>{issuer}</saml:Issuer>"
        f'<saml:NameID Format="{NAMEID_EMAIL}">{name_id}</saml:NameID>'
        "</samlp:LogoutRequest>"
    )


def redirect_binding_query(xml: str, *, keys: KeyPair | None = None, signed: bool = True) -> dict[str, str]:
    """GET parameters of the HTTP-Redirect binding for ``xml``, signed (RSA-SHA256) by ``keys`` (the IdP's)."""
    from cryptography.hazmat.primitives.asymmetric import padding
    from onelogin.saml2.auth import OneLogin_Saml2_Auth
    from onelogin.saml2.constants import OneLogin_Saml2_Constants
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    encoded = OneLogin_Saml2_Utils.deflate_and_base64_encode(xml)
    query = {"SAMLRequest": encoded}
    if not signed:
        return query
    algorithm = OneLogin_Saml2_Constants.RSA_SHA256
    to_sign = OneLogin_Saml2_Auth._build_sign_query(encoded, None, algorithm, "SAMLRequest")
    key = serialization.load_pem_private_key((keys or idp_keys()).key_pem, password=None)
    signature = key.sign(to_sign.encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
    return {**query, "SigAlg": algorithm, "Signature": base64.b64encode(signature).decode()}
