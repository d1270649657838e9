"""The SP side of SAML: python3-saml settings, the SP metadata document, and the AuthnRequest redirect."""

from __future__ import annotations

import base64
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import etree

from apps.sso.models import SSOConnection
from apps.sso.saml import ATTRIBUTE_PRESET_LABELS, ATTRIBUTE_PRESETS, login_url, sp_metadata_xml, sp_settings
from apps.sso.saml.metadata import parse_certificate
from apps.sso.types import SSOConfigError
from tests.sso import saml_helpers as h


@pytest.fixture
def connection(db: None) -> SSOConnection:
    return h.make_connection()


def test_settings_are_strict_and_derive_urls_from_the_public_id(connection: SSOConnection) -> None:
    settings = sp_settings(connection, base_url=h.BASE_URL + "/")
    prefix = f"{h.BASE_URL}/sso/saml/{connection.public_id}"

    assert settings["strict"] is True
    assert settings["sp"]["entityId"] == f"{prefix}/metadata/"
    assert settings["sp"]["assertionConsumerService"]["url"] == f"{prefix}/acs/"
    assert settings["sp"]["singleLogoutService"]["url"] == f"{prefix}/sls/"
    assert settings["idp"]["entityId"] == h.IDP_ENTITY_ID
    assert settings["idp"]["singleSignOnService"]["url"] == h.IDP_SSO_URL
    assert settings["idp"]["singleLogoutService"]["url"] == h.IDP_SLO_URL
    security = settings["security"]
    assert security["wantAssertionsSigned"] is True
    assert security["wantMessagesSigned"] is False
    assert security["rejectDeprecatedAlgorithm"] is True
    assert security["requestedAuthnContext"] is False
    assert security["wantNameId"] is True
    assert security["signatureAlgorithm"].endswith("rsa-sha256")
    assert security["authnRequestsSigned"] is False


def test_settings_carry_every_rollover_certificate_as_pem(db: None) -> None:
    connection = h.make_connection(idp_x509_certs=[h.idp_keys().cert_base64, h.other_keys().cert_pem])

    certs = sp_settings(connection, base_url=h.BASE_URL)["idp"]["x509certMulti"]["signing"]

    assert certs == [parse_certificate(h.idp_keys().cert_pem), parse_certificate(h.other_keys().cert_pem)]


def test_flags_come_from_the_config(db: None) -> None:
    connection = h.make_connection(want_assertion_signed=False, want_message_signed=True)

    security = sp_settings(connection, base_url=h.BASE_URL)["security"]

    assert (security["wantAssertionsSigned"], security["wantMessagesSigned"]) == (False, True)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"idp_x509_certs": []}, "certificate"),
        ({"idp_x509_certs": ["not a certificate"]}, "certificate"),
        ({"idp_entity_id": ""}, "entity ID"),
        ({"idp_sso_url": "javascript:alert(1)"}, "sign-on URL"),
    ],
)
def test_unusable_config_raises_a_config_error(db: None, config: dict, message: str) -> None:
    connection = h.make_connection(**config)

    with pytest.raises(SSOConfigError, match=message):
        sp_settings(connection, base_url=h.BASE_URL)


def test_oidc_connection_is_not_saml(connection: SSOConnection) -> None:
    connection.kind = SSOConnection.Kind.OIDC

    with pytest.raises(SSOConfigError):
        sp_settings(connection, base_url=h.BASE_URL)


def test_sp_metadata_names_the_entity_and_acs_and_does_not_expire(connection: SSOConnection) -> None:
    xml = sp_metadata_xml(connection, base_url=h.BASE_URL)
    root = etree.fromstring(xml.encode())
    ns = {"md": h.NS_MD}
    prefix = f"{h.BASE_URL}/sso/saml/{connection.public_id}"

    assert root.get("entityID") == f"{prefix}/metadata/"
    assert root.get("validUntil") is None
    sp = root.find("md:SPSSODescriptor", ns)
    assert sp.get("WantAssertionsSigned") == "true"
    assert sp.get("AuthnRequestsSigned") == "false"
    acs = sp.find("md:AssertionConsumerService", ns)
    assert acs.get("Location") == f"{prefix}/acs/"
    assert acs.get("Binding") == "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
    assert sp.find("md:SingleLogoutService", ns).get("Location") == f"{prefix}/sls/"


def test_sp_metadata_is_available_before_the_idp_is_configured(db: None) -> None:
    connection = h.make_connection(idp_entity_id="", idp_sso_url="", idp_x509_certs=[])

    root = etree.fromstring(sp_metadata_xml(connection, base_url=h.BASE_URL).encode())

    assert root.get("entityID") == f"{h.BASE_URL}/sso/saml/{connection.public_id}/metadata/"


def test_login_url_redirects_to_the_idp_with_a_deflated_authn_request(connection: SSOConnection) -> None:
    url, request_id = login_url(connection, base_url=h.BASE_URL, relay_state="opaque-token-123")

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == h.IDP_SSO_URL
    query = parse_qs(parts.query)
    assert query["RelayState"] == ["opaque-token-123"]
    request = etree.fromstring(zlib.decompress(base64.b64decode(query["SAMLRequest"][0]), -15))
    assert request.get("ID") == request_id
    assert request.get("Destination") == h.IDP_SSO_URL
    assert request.get("AssertionConsumerServiceURL") == f"{h.BASE_URL}/sso/saml/{connection.public_id}/acs/"
    assert request.find("{urn:oasis:names:tc:SAML:2.0:assertion}Issuer").text.endswith("/metadata/")
    assert "Signature" not in query
    assert request.find("{urn:oasis:names:tc:SAML:2.0:protocol}RequestedAuthnContext") is None


def test_each_login_gets_a_new_request_id(connection: SSOConnection) -> None:
    first = login_url(connection, base_url=h.BASE_URL, relay_state="a")[1]
    second = login_url(connection, base_url=h.BASE_URL, relay_state="a")[1]

    assert first != second


def test_idp_sso_url_with_a_query_keeps_it(db: None) -> None:
    connection = h.make_connection(idp_sso_url="https://accounts.google.test/o/saml2/idp?idpid=C0abc")

    url, _ = login_url(connection, base_url=h.BASE_URL, relay_state="x")

    query = parse_qs(urlsplit(url).query)
    assert query["idpid"] == ["C0abc"]
    assert "SAMLRequest" in query


def test_relay_state_longer_than_80_bytes_is_a_programming_error(connection: SSOConnection) -> None:
    with pytest.raises(ValueError, match="80"):
        login_url(connection, base_url=h.BASE_URL, relay_state="x" * 81)


def test_attribute_presets_cover_the_offered_idps() -> None:
    assert set(ATTRIBUTE_PRESETS) == set(ATTRIBUTE_PRESET_LABELS) == {"okta", "entra", "google", "generic"}
    for mapping in ATTRIBUTE_PRESETS.values():
        assert set(mapping) == {"email", "first_name", "last_name", "groups"}
    assert ATTRIBUTE_PRESETS["entra"]["email"].startswith("http://schemas.xmlsoap.org/ws/2005/05/identity/claims/")
