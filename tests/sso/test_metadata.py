"""Parsing IdP metadata and certificates: what admins paste or IdPs publish, good and bad."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.sso.saml.metadata import (
    MAX_METADATA_BYTES,
    certificate_expiry,
    certificate_fingerprint,
    metadata_config,
    parse_certificate,
    parse_idp_metadata,
)
from apps.sso.types import SSOConfigError
from tests.sso import saml_helpers as h

# --- metadata ---------------------------------------------------------------------------------


def test_okta_style_metadata_is_read() -> None:
    parsed = parse_idp_metadata(h.idp_metadata_xml())

    assert parsed["entity_id"] == h.IDP_ENTITY_ID
    assert parsed["sso_url"] == h.IDP_SSO_URL  # the HTTP-Redirect endpoint, listed second
    assert parsed["sso_binding"].endswith("HTTP-Redirect")
    assert parsed["slo_url"] == h.IDP_SLO_URL
    assert parsed["certs"] == [parse_certificate(h.idp_keys().cert_pem)]
    assert parsed["valid_until"] is None


def test_post_binding_is_the_fallback() -> None:
    parsed = parse_idp_metadata(h.idp_metadata_xml(bindings=("HTTP-POST",), slo_url=None))

    assert parsed["sso_url"] == h.IDP_SSO_URL + "/post"
    assert parsed["sso_binding"].endswith("HTTP-POST")
    assert parsed["slo_url"] == ""


def test_rollover_certificates_are_all_kept_and_encryption_keys_ignored() -> None:
    certs = [h.idp_keys().cert_base64, h.other_keys().cert_base64, h.idp_keys().cert_base64]
    third = h.make_key_pair("encryption.example.test").cert_base64

    parsed = parse_idp_metadata(h.idp_metadata_xml(certs=certs, encryption_cert=third))

    assert parsed["certs"] == [parse_certificate(h.idp_keys().cert_pem), parse_certificate(h.other_keys().cert_pem)]


def test_key_descriptor_without_use_counts_as_signing() -> None:
    xml = h.idp_metadata_xml().replace(' use="signing"', "")

    assert len(parse_idp_metadata(xml)["certs"]) == 1


def test_bytes_with_an_encoding_declaration_and_str_with_one_both_parse() -> None:
    xml = h.idp_metadata_xml()

    assert parse_idp_metadata(xml.encode())["entity_id"] == h.IDP_ENTITY_ID
    assert parse_idp_metadata(xml)["entity_id"] == h.IDP_ENTITY_ID


def test_valid_until_is_returned_and_an_expired_document_refused() -> None:
    future = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7)

    assert parse_idp_metadata(h.idp_metadata_xml(valid_until=future))["valid_until"] == future
    with pytest.raises(SSOConfigError, match="expired"):
        parse_idp_metadata(h.idp_metadata_xml(valid_until=datetime.now(UTC) - timedelta(days=1)))


def test_entities_descriptor_with_one_idp_is_accepted() -> None:
    inner = h.idp_metadata_xml().split("?>", 1)[1]
    xml = f'<md:EntitiesDescriptor xmlns:md="{h.NS_MD}">{inner}</md:EntitiesDescriptor>'

    assert parse_idp_metadata(xml)["entity_id"] == h.IDP_ENTITY_ID


def test_entities_descriptor_with_two_idps_is_refused() -> None:
    one = h.idp_metadata_xml().split("?>", 1)[1]
    two = h.idp_metadata_xml(entity_id="https://second.example.test/").split("?>", 1)[1]
    xml = f'<md:EntitiesDescriptor xmlns:md="{h.NS_MD}">{one}{two}</md:EntitiesDescriptor>'

    with pytest.raises(SSOConfigError, match="several identity providers"):
        parse_idp_metadata(xml)


def test_metadata_config_is_json_safe() -> None:
    future = datetime.now(UTC) + timedelta(days=1)
    config = metadata_config(parse_idp_metadata(h.idp_metadata_xml(valid_until=future)))

    assert config["idp_entity_id"] == h.IDP_ENTITY_ID
    assert config["idp_x509_certs"][0].startswith("-----BEGIN CERTIFICATE-----")
    assert isinstance(config["metadata_valid_until"], str)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("<!DOCTYPE html><html><head><title>Sign in</title></head><body>Okta</body></html>", "HTML page"),
        ("  <html lang='en'><body>login</body></html>", "HTML page"),
        ("<!-- generated --><HTML><BODY>x</BODY></HTML>", "HTML page"),
        ("this is not xml at all", "not well-formed XML"),
        ("<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata'", "not well-formed XML"),
        ("", "empty"),
        ("<rss version='2.0'><channel/></rss>", "not SAML 2.0 metadata"),
        (
            f"<md:EntityDescriptor xmlns:md='{h.NS_MD}' entityID='https://sp.example/'>"
            "<md:SPSSODescriptor protocolSupportEnumeration='urn:oasis:names:tc:SAML:2.0:protocol'/>"
            "</md:EntityDescriptor>",
            "no IDPSSODescriptor",
        ),
    ],
)
def test_bad_documents_get_a_clear_message(document: str, message: str) -> None:
    with pytest.raises(SSOConfigError, match=message):
        parse_idp_metadata(document)


def test_metadata_without_a_signing_certificate_is_refused() -> None:
    with pytest.raises(SSOConfigError, match="no signing certificate"):
        parse_idp_metadata(h.idp_metadata_xml(certs=[]))


def test_metadata_with_only_an_encryption_certificate_is_refused() -> None:
    with pytest.raises(SSOConfigError, match="no signing certificate"):
        parse_idp_metadata(h.idp_metadata_xml(certs=[], encryption_cert=h.idp_keys().cert_base64))


def test_metadata_with_a_broken_certificate_is_refused() -> None:
    with pytest.raises(SSOConfigError, match="certificate"):
        parse_idp_metadata(h.idp_metadata_xml(certs=["MIIBrokenCertificate=="]))


def test_metadata_without_a_saml2_sso_endpoint_is_refused() -> None:
    with pytest.raises(SSOConfigError, match="SingleSignOnService"):
        parse_idp_metadata(h.idp_metadata_xml(bindings=("SOAP",)))


def test_saml1_only_idp_is_refused() -> None:
    xml = h.idp_metadata_xml().replace("urn:oasis:names:tc:SAML:2.0:protocol", "urn:oasis:names:tc:SAML:1.1:protocol")

    with pytest.raises(SSOConfigError, match=r"does not support SAML 2\.0"):
        parse_idp_metadata(xml)


def test_huge_metadata_is_refused_before_parsing() -> None:
    xml = h.idp_metadata_xml().replace(
        "</md:EntityDescriptor>", "<!--" + "x" * MAX_METADATA_BYTES + "-->" + "</md:EntityDescriptor>"
    )

    with pytest.raises(SSOConfigError, match="larger than"):
        parse_idp_metadata(xml)


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE md [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
        '<!DOCTYPE md [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>',
    ],
)
def test_dtds_and_entities_are_refused(doctype: str) -> None:
    xml = h.idp_metadata_xml().replace("?>", "?>" + doctype, 1)

    with pytest.raises(SSOConfigError):
        parse_idp_metadata(xml)


# --- certificates -----------------------------------------------------------------------------


def test_pem_and_bare_base64_normalise_to_the_same_pem() -> None:
    keys = h.idp_keys()
    wrapped = "\n".join(keys.cert_base64[i : i + 64] for i in range(0, len(keys.cert_base64), 64))

    assert parse_certificate(keys.cert_pem) == keys.cert_pem
    assert parse_certificate(keys.cert_base64) == keys.cert_pem
    assert parse_certificate("  " + wrapped + "\r\n") == keys.cert_pem


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("hello world!!", "base64"),
        ("aGVsbG8gd29ybGQ=", "X.509"),  # valid base64, not a certificate
        ("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "not a certificate"),
        ("-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----", "private key"),
    ],
)
def test_certificate_parse_errors(text: str, message: str) -> None:
    with pytest.raises(SSOConfigError, match=message):
        parse_certificate(text)


def test_two_certificates_in_one_paste_are_refused() -> None:
    with pytest.raises(SSOConfigError, match="one certificate"):
        parse_certificate(h.idp_keys().cert_pem + h.other_keys().cert_pem)


def test_certificate_expiry_and_fingerprint() -> None:
    not_after = datetime(2031, 5, 17, 12, 0, tzinfo=UTC)
    keys = h.make_key_pair("expiry.example.test", not_after=not_after)

    assert certificate_expiry(keys.cert_pem) == not_after
    fingerprint = certificate_fingerprint(keys.cert_base64)
    assert len(fingerprint.split(":")) == 32
    assert fingerprint == certificate_fingerprint(keys.cert_pem)
