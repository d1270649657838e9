"""Attacks on the SAML ACS: signature wrapping (XSW), comment injection, oversized and hostile XML.

Each XSW sample starts from a genuine response for ada@acme.example signed
with the IdP's real key, and rearranges it so that a naive consumer would read
an unsigned "evil" assertion for admin@acme.example while the signature still
verifies over the original. Every one must be refused.
"""

from __future__ import annotations

import base64
import copy

import pytest
from lxml import etree

from apps.sso.models import SeenAssertion, SSOConnection
from apps.sso.saml import MAX_RESPONSE_BASE64
from apps.sso.types import SSOError
from tests.sso import saml_helpers as h

EVIL = "admin@acme.example"


@pytest.fixture
def connection(db: None) -> SSOConnection:
    return h.make_connection()


def q(element: etree._Element, path: str) -> etree._Element:
    found = element.find(path, h.NSMAP)
    assert found is not None, path
    return found


def evil_copy(assertion: etree._Element, *, new_id: bool = True) -> etree._Element:
    """The signed assertion, unsigned, re-targeted at the admin account."""
    evil = copy.deepcopy(assertion)
    signature = evil.find("ds:Signature", h.NSMAP)
    if signature is not None:
        evil.remove(signature)
    if new_id:
        evil.set("ID", h.new_id())
    q(evil, "saml:Subject/saml:NameID").text = EVIL
    for value in evil.iterfind(".//saml:AttributeValue", h.NSMAP):
        if value.text == "ada@acme.example":
            value.text = EVIL
    return evil


def genuine(connection: SSOConnection, **kwargs: object) -> tuple[etree._Element, etree._Element]:
    document = h.signed_response(h.spec_for(connection), **kwargs)
    return document, q(document, "saml:Assertion")


def assert_refused(connection: SSOConnection, document: etree._Element) -> SSOError:
    with pytest.raises(SSOError) as info:
        h.post(connection, document)
    assert info.value.code in {"signature", "malformed"}, info.value.code
    assert not SeenAssertion.objects.filter(connection=connection).exists()
    return info.value


def test_the_untouched_sample_is_accepted(connection: SSOConnection) -> None:
    """Control: without the rearrangement the same response signs ada in."""
    document, _ = genuine(connection)

    assert h.post(connection, document).subject == "ada@acme.example"


# --- signature wrapping -----------------------------------------------------------------------


def test_xsw_evil_assertion_inserted_before_the_signed_one(connection: SSOConnection) -> None:
    document, signed = genuine(connection)
    document.insert(document.index(signed), evil_copy(signed))

    assert assert_refused(connection, document).code == "signature"


def test_xsw_evil_assertion_with_the_same_id_inserted_before_the_signed_one(connection: SSOConnection) -> None:
    document, signed = genuine(connection)
    document.insert(document.index(signed), evil_copy(signed, new_id=False))

    assert_refused(connection, document)


def test_xsw_signed_assertion_moved_into_extensions_and_evil_takes_its_place(connection: SSOConnection) -> None:
    document, signed = genuine(connection)
    evil = evil_copy(signed, new_id=False)
    document.replace(signed, evil)
    extensions = etree.Element(f"{{{h.NS_SAMLP}}}Extensions")
    extensions.append(signed)
    document.insert(document.index(q(document, "saml:Issuer")) + 1, extensions)

    assert assert_refused(connection, document).code == "signature"


def test_xsw_evil_assertion_wraps_the_signed_one(connection: SSOConnection) -> None:
    document, signed = genuine(connection)
    evil = evil_copy(signed)
    document.replace(signed, evil)
    advice = etree.Element(f"{{{h.NS_SAML}}}Advice")
    advice.append(signed)
    evil.insert(evil.index(q(evil, "saml:Conditions")) + 1, advice)

    assert assert_refused(connection, document).code == "signature"


def test_xsw_signed_assertion_hidden_in_the_evil_assertions_signature_object(connection: SSOConnection) -> None:
    document, signed = genuine(connection)
    evil = evil_copy(signed, new_id=False)
    position = document.index(signed)
    signature = copy.deepcopy(q(signed, "ds:Signature"))
    obj = etree.SubElement(signature, f"{{{h.NS_DS}}}Object")
    obj.append(signed)  # moves the genuine assertion out of the response
    evil.insert(evil.index(q(evil, "saml:Issuer")) + 1, signature)
    document.insert(position, evil)

    assert_refused(connection, document)


def test_xsw_signed_response_wrapped_by_an_evil_response(db: None) -> None:
    connection = h.make_connection(want_assertion_signed=False)
    original, signed = genuine(connection, sign_assertion=False, sign_response=True)
    evil_response = copy.deepcopy(original)
    evil_response.set("ID", h.new_id())
    evil_response.replace(q(evil_response, "saml:Assertion"), evil_copy(signed))
    # Move the original signature (with the whole genuine response inside its Object) to the evil one.
    signature = q(evil_response, "ds:Signature")
    obj = etree.SubElement(signature, f"{{{h.NS_DS}}}Object")
    obj.append(original)

    assert_refused(connection, evil_response)


def test_xsw_evil_assertion_replaces_the_signed_one_in_a_signed_response(db: None) -> None:
    """Response-level signature only: swapping the assertion breaks the response digest."""
    connection = h.make_connection(want_assertion_signed=False)
    document, signed = genuine(connection, sign_assertion=False, sign_response=True)
    document.replace(signed, evil_copy(signed, new_id=False))

    assert assert_refused(connection, document).code == "signature"


def test_signature_that_references_another_element_is_refused(connection: SSOConnection) -> None:
    """A signature inside the evil assertion whose Reference points at the genuine assertion's ID."""
    document, signed = genuine(connection)
    evil = evil_copy(signed)
    evil.insert(evil.index(q(evil, "saml:Issuer")) + 1, copy.deepcopy(q(signed, "ds:Signature")))
    document.replace(signed, evil)

    assert assert_refused(connection, document).code == "signature"


# --- comment injection ------------------------------------------------------------------------


def test_comment_in_name_id_does_not_truncate_the_identity(connection: SSOConnection) -> None:
    """admin@evil.com<!---->.good.com must not become admin@evil.com (CVE-2017-11427 class)."""
    spec = h.spec_for(connection, name_id="admin@acme.example.evil.test", attributes={})
    xml = h.to_xml(h.signed_response(spec))
    injected = xml.replace(b">admin@acme.example.evil.test<", b">admin@acme.example<!---->.evil.test<")
    assert injected != xml

    # Comments are dropped at parse time and c14n ignores them, so the signature still holds:
    # what matters is that the identity read is the whole signed text.
    assertion = h.post(connection, injected)

    assert assertion.subject == "admin@acme.example.evil.test"
    assert assertion.email == "admin@acme.example.evil.test"


def test_comment_in_email_attribute_does_not_truncate_it(db: None) -> None:
    connection = h.make_connection()
    spec = h.spec_for(
        connection,
        name_id="u-42",
        name_id_format=h.NAMEID_PERSISTENT,
        attributes={"email": ["admin@acme.example.evil.test"]},
    )
    xml = h.to_xml(h.signed_response(spec))
    injected = xml.replace(b">admin@acme.example.evil.test<", b">admin@acme.example<!-- x -->.evil.test<")
    assert injected != xml

    assert h.post(connection, injected).email == "admin@acme.example.evil.test"


# --- hostile encodings and sizes --------------------------------------------------------------


@pytest.mark.parametrize("value", ["not base64 at all!", "QUJD$$$", "", "   "])
def test_malformed_base64_is_refused(connection: SSOConnection, value: str) -> None:
    with pytest.raises(SSOError) as info:
        h.post(connection, value)

    assert info.value.code == "malformed"


@pytest.mark.parametrize("payload", [b"hello, world", b"<not-closed", b"\x00\x01\x02binary"])
def test_not_xml_is_refused(connection: SSOConnection, payload: bytes) -> None:
    with pytest.raises(SSOError) as info:
        h.post(connection, base64.b64encode(payload).decode())

    assert info.value.code == "malformed"


def test_huge_payload_is_refused_before_parsing(connection: SSOConnection) -> None:
    padding = "A" * (MAX_RESPONSE_BASE64 + 4)

    with pytest.raises(SSOError) as info:
        h.post(connection, padding)

    assert info.value.code == "too_large"


def test_entity_expansion_is_refused(connection: SSOConnection) -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0">&b;'
        b"</samlp:Response>"
    )

    with pytest.raises(SSOError) as info:
        h.post(connection, base64.b64encode(bomb).decode())

    assert info.value.code == "malformed"


def test_external_entity_is_refused(connection: SSOConnection) -> None:
    xxe = (
        b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="_x" Version="2.0">&x;'
        b"</samlp:Response>"
    )

    with pytest.raises(SSOError) as info:
        h.post(connection, base64.b64encode(xxe).decode())

    assert info.value.code == "malformed"


def test_encrypted_assertion_is_refused_as_unsupported(connection: SSOConnection) -> None:
    spec = h.spec_for(connection)
    document = h.build_response(spec)
    document.replace(q(document, "saml:Assertion"), etree.Element(f"{{{h.NS_SAML}}}EncryptedAssertion"))

    with pytest.raises(SSOError) as info:
        h.post(connection, document)

    assert info.value.code == "unsupported"
