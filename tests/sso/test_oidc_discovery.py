"""OIDC discovery: a real provider's document is accepted; unusable or unreachable ones are refused plainly."""

from __future__ import annotations

import re

import pytest

from apps.sso import oidc
from apps.sso.types import SSOConfigError
from tests.sso.oidc_provider import OIDCProvider


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.DEBUG = False
    settings.SSO_ALLOW_INSECURE_LOOPBACK = True


@pytest.fixture
def provider():
    with OIDCProvider() as running:
        yield running


def test_discovery_document_of_a_real_provider_is_returned(provider):
    document = oidc.discover(provider.issuer)

    assert document["issuer"] == provider.issuer
    assert document["token_endpoint"] == f"{provider.issuer}/token"
    assert document["scopes_supported"] == ["openid", "email", "profile", "groups"]  # the whole document
    assert provider.requests_seen == [("GET", "/.well-known/openid-configuration")]


def test_issuer_with_trailing_slash_must_match_the_document_exactly(provider):
    with pytest.raises(SSOConfigError, match="issuer"):
        oidc.discover(provider.issuer + "/")


def test_document_naming_another_issuer_is_refused(provider):
    provider.discovery_overrides = {"issuer": "https://evil.example"}

    with pytest.raises(SSOConfigError, match=re.escape("issuer 'https://evil.example' is not the configured")):
        oidc.discover(provider.issuer)


@pytest.mark.parametrize("field", oidc.DISCOVERY_REQUIRED_FIELDS)
def test_missing_required_field_is_named(provider, field):
    provider.discovery_omit = {field}

    with pytest.raises(SSOConfigError, match=f"has no {field}"):
        oidc.discover(provider.issuer)


def test_provider_without_the_code_flow_is_refused(provider):
    provider.discovery_overrides = {"response_types_supported": ["id_token", "token id_token"]}

    with pytest.raises(SSOConfigError, match="response_types_supported"):
        oidc.discover(provider.issuer)


@pytest.mark.parametrize("algs", [["HS256"], ["none"], ["HS256", "none", "EdDSA"]])
def test_provider_without_a_safe_signing_algorithm_is_refused(provider, algs):
    provider.discovery_overrides = {"id_token_signing_alg_values_supported": algs}

    with pytest.raises(SSOConfigError, match="id_token_signing_alg_values_supported has none of RS256"):
        oidc.discover(provider.issuer)


@pytest.mark.parametrize(
    ("field", "url"),
    [
        ("token_endpoint", "http://idp.example/token"),
        ("jwks_uri", "ftp://idp.example/jwks"),
        ("authorization_endpoint", "https://user:pw@idp.example/authorize"),
    ],
)
def test_endpoint_that_is_not_https_is_refused(provider, field, url):
    provider.discovery_overrides = {field: url}

    with pytest.raises(SSOConfigError, match=f"{field} (is not an https URL|must not contain a user name)"):
        oidc.discover(provider.issuer)


def test_slow_provider_times_out(provider):
    provider.delays = {"/.well-known/openid-configuration": 5}

    with pytest.raises(SSOConfigError, match="timed out"):
        oidc.discover(provider.issuer, timeout=0.3)


def test_html_page_instead_of_json_is_refused(provider):
    provider.discovery_html = True

    with pytest.raises(SSOConfigError, match="is not JSON"):
        oidc.discover(provider.issuer)


def test_http_error_is_reported():
    with OIDCProvider() as provider:
        issuer = provider.issuer + "/tenant-a"  # the provider serves discovery only at its root

        with pytest.raises(SSOConfigError, match="answered HTTP 404"):
            oidc.discover(issuer)


def test_unreachable_provider_is_reported():
    with OIDCProvider() as provider:
        issuer = provider.issuer
    # stopped: nothing listens on that port any more
    with pytest.raises(SSOConfigError, match="could not be reached"):
        oidc.discover(issuer, timeout=2)


def test_oversized_document_is_refused(provider):
    provider.discovery_overrides = {"padding": "x" * (oidc.MAX_DISCOVERY_BYTES + 1)}

    with pytest.raises(SSOConfigError, match="is larger than 256 KiB"):
        oidc.discover(provider.issuer)


def test_http_issuer_is_refused_when_insecure_loopback_is_not_allowed(provider, settings):
    settings.SSO_ALLOW_INSECURE_LOOPBACK = False

    with pytest.raises(SSOConfigError, match="uses plain http"):
        oidc.discover(provider.issuer)
    assert provider.requests_seen == []  # refused before any request


def test_debug_allows_http_on_loopback(provider, settings):
    settings.SSO_ALLOW_INSECURE_LOOPBACK = False
    settings.DEBUG = True

    assert oidc.discover(provider.issuer)["issuer"] == provider.issuer


@pytest.mark.parametrize(
    "issuer", ["http://idp.example", "http://10.0.0.8", "ftp://idp.example", "idp.example", "https://", ""]
)
def test_issuer_that_is_not_https_is_refused(issuer):
    with pytest.raises(SSOConfigError, match=r"issuer (is not|is empty)"):
        oidc.discover(issuer)


@pytest.mark.parametrize("issuer", ["https://10.0.0.8", "https://192.168.1.1/realms/acme", "https://169.254.169.254"])
def test_issuer_on_a_private_network_is_refused(issuer):
    with pytest.raises(SSOConfigError, match="private or reserved network address"):
        oidc.discover(issuer, timeout=1)


def test_https_to_loopback_is_refused_unless_loopback_allowed(settings):
    settings.SSO_ALLOW_INSECURE_LOOPBACK = False

    with pytest.raises(SSOConfigError, match="private or reserved network address"):
        oidc.discover("https://127.0.0.1:9", timeout=1)


def test_issuer_with_a_query_is_refused():
    with pytest.raises(SSOConfigError, match="query string"):
        oidc.discover("https://idp.example/?tenant=acme")
