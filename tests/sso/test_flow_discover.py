"""Home-realm discovery: a verified domain with an enabled connection goes to its IdP; anything else to passwords."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from apps.sso import services
from apps.sso.models import SSOConnection
from tests.sso.test_flow_support import https_client, saml_connection, verify_domain

pytestmark = pytest.mark.django_db


def _discover(email: str, **extra: str):
    return https_client().post("/sso/discover/", {"email": email, **extra})


def test_verified_domain_goes_to_its_idp(cast) -> None:
    verify_domain(cast.acme, "acme.example")
    connection = saml_connection(cast.acme)

    response = _discover("Ada@ACME.example", next="/t/acme/")

    assert response.status_code == 302
    parts = urlsplit(response["Location"])
    assert parts.path == f"/sso/start/{connection.public_id}/"
    assert parse_qs(parts.query) == {"login_hint": ["Ada@ACME.example"], "next": ["/t/acme/"]}
    assert services.connection_for_email("someone@acme.example") == connection


def test_unverified_domain_goes_to_the_password_page_prefilled(cast) -> None:
    verify_domain(cast.acme, "acme.example", verified=False)
    saml_connection(cast.acme)

    response = _discover("ada@acme.example")

    parts = urlsplit(response["Location"])
    assert parts.path == "/accounts/login/"
    assert parse_qs(parts.query) == {"login": ["ada@acme.example"]}
    assert services.connection_for_email("ada@acme.example") is None


def test_verified_domain_without_enabled_connection_goes_to_passwords(cast) -> None:
    verify_domain(cast.acme, "acme.example")
    saml_connection(cast.acme, status=SSOConnection.Status.TESTED)

    response = _discover("ada@acme.example")

    assert urlsplit(response["Location"]).path == "/accounts/login/"


def test_unknown_domain_and_off_site_next(cast) -> None:
    response = _discover("someone@unknown.example", next="https://evil.example/")

    parts = urlsplit(response["Location"])
    assert parts.path == "/accounts/login/"
    assert "next" not in parse_qs(parts.query)


def test_subdomain_is_not_its_parent(cast) -> None:
    verify_domain(cast.acme, "acme.example")
    saml_connection(cast.acme)

    assert services.connection_for_email("ada@eu.acme.example") is None
    assert services.connection_for_email("ada@acme.example.evil.example") is None


def test_form_page_and_bad_address() -> None:
    client = https_client()

    assert client.get("/sso/discover/").status_code == 200
    response = client.post("/sso/discover/", {"email": "not an address"})

    assert response.status_code == 400
    assert b"valid email" in response.content.lower() or b"valid e-mail" in response.content.lower()
