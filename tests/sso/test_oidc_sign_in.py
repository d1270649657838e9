"""OIDC sign-in end to end against a real provider: begin → authorize → complete, and every forgery refused."""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from apps.sso import oidc
from apps.sso.models import SeenAssertion, SSOConnection
from apps.sso.types import SSOConfigError, SSOError
from tests.sso.oidc_provider import CLIENT_ID, CLIENT_SECRET, DROP, OIDCProvider, follow_authorize

REDIRECT_URI = "https://bastion.example.com/sso/oidc/callback"


@pytest.fixture(autouse=True)
def _loopback_allowed(settings):
    settings.DEBUG = False
    settings.SSO_ALLOW_INSECURE_LOOPBACK = True


@pytest.fixture(autouse=True)
def _fresh_jwks_cache():
    oidc.clear_jwks_cache()
    yield
    oidc.clear_jwks_cache()


@pytest.fixture
def provider():
    with OIDCProvider() as running:
        yield running


@pytest.fixture
def connection(db, provider):
    return SSOConnection.objects.create(
        kind=SSOConnection.Kind.OIDC,
        name="Test IdP",
        config={"issuer": provider.issuer, "client_id": CLIENT_ID, "scopes": ["email", "profile"]},
    )


class Flow:
    """One sign-in attempt, split where the browser would be, so tests can tamper between the steps."""

    def __init__(self, provider: OIDCProvider, connection: SSOConnection) -> None:
        self.provider = provider
        self.connection = connection
        self.discovery = oidc.discover(provider.issuer)

    def begin(self, **kwargs):
        return oidc.begin(
            self.connection,
            redirect_uri=REDIRECT_URI,
            client_id=CLIENT_ID,
            scopes=["email", "profile"],
            discovery=self.discovery,
            **kwargs,
        )

    def complete(self, params, blob, **kwargs):
        arguments = {
            "redirect_uri": REDIRECT_URI,
            "params": params,
            "state_blob": blob,
            "client_id": CLIENT_ID,
            "client_secret": CLIENT_SECRET,
            "discovery": self.discovery,
            **kwargs,
        }
        return oidc.complete(self.connection, **arguments)

    def run(self, **kwargs):
        url, blob = self.begin()
        return self.complete(follow_authorize(url), blob, **kwargs)


@pytest.fixture
def flow(provider, connection):
    return Flow(provider, connection)


def refused(flow: Flow, code: str, **kwargs) -> SSOError:
    with pytest.raises(SSOError) as caught:
        flow.run(**kwargs)
    assert caught.value.code == code, caught.value.message
    return caught.value


# --- the happy path ------------------------------------------------------------------------------


def test_sign_in_end_to_end(flow, provider, connection):
    url, blob = flow.begin()
    params = follow_authorize(url)
    assertion = flow.complete(params, blob)

    assert assertion.subject == "00u1abcd"
    assert assertion.email == "ada@acme.example"
    assert (assertion.first_name, assertion.last_name) == ("Ada", "Lovelace")
    assert assertion.groups == ("engineering", "admins")
    assert assertion.mfa_asserted is False
    assert assertion.authn_context == "amr=pwd"
    assert assertion.attributes["iss"] == provider.issuer
    assert provider.token_auth_used == ["client_secret_basic"]  # advertised first, and secret form-encoded
    seen = SeenAssertion.objects.get(connection=connection)
    assert seen.assertion_id == "jti:" + assertion.attributes["jti"]
    assert seen.expires_at.timestamp() == assertion.attributes["exp"] + 60


def test_authorization_url_carries_pkce_state_and_nonce(flow, provider, connection):
    url, blob = flow.begin(login_hint="ada@acme.example")

    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{provider.issuer}/authorize"
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == REDIRECT_URI
    assert query["scope"] == "openid email profile"
    assert query["state"] == blob["state"]
    assert query["nonce"] == blob["nonce"]
    assert query["login_hint"] == "ada@acme.example"
    assert query["code_challenge_method"] == "S256"
    expected = base64.urlsafe_b64encode(hashlib.sha256(blob["code_verifier"].encode()).digest()).rstrip(b"=")
    assert query["code_challenge"] == expected.decode()
    assert "code_verifier" not in query
    assert 43 <= len(blob["code_verifier"]) <= 128
    assert blob["connection"] == str(connection.public_id)
    assert abs(blob["created_at"] - time.time()) < 5
    _, other = flow.begin()
    assert {other["state"], other["nonce"], other["code_verifier"]}.isdisjoint(blob.values())


def test_authorization_endpoint_query_is_kept(flow):
    flow.discovery = {**flow.discovery, "authorization_endpoint": flow.discovery["authorization_endpoint"] + "?p=B2C"}

    url, _ = flow.begin()

    assert parse_qs(urlsplit(url).query)["p"] == ["B2C"]


def test_begin_refuses_a_discovery_without_authorization_endpoint(flow):
    flow.discovery = {**flow.discovery, "authorization_endpoint": "http://idp.example/authorize"}

    with pytest.raises(SSOConfigError, match="authorization endpoint is not an https URL"):
        flow.begin()


def test_client_secret_post_when_the_provider_supports_only_that(flow, provider):
    provider.auth_methods = ["client_secret_post"]
    flow.discovery = oidc.discover(provider.issuer)

    assert flow.run().subject == "00u1abcd"
    assert provider.token_auth_used == ["client_secret_post"]


def test_connection_may_choose_client_secret_post(flow, provider, connection):
    connection.config["token_endpoint_auth_method"] = "client_secret_post"

    flow.run()

    assert provider.token_auth_used == ["client_secret_post"]


def test_ps256_signed_token_is_accepted(flow, provider):
    provider.alg = "PS256"

    assert flow.run().subject == "00u1abcd"


def test_es256_signed_token_is_accepted(flow, provider):
    provider.alg = "ES256"

    assert flow.run().subject == "00u1abcd"


def test_es256_header_on_the_rsa_key_is_refused(flow, provider):
    provider.alg = "ES256"
    provider.kid_override = provider.kid  # the RSA key's id: wrong key type for the algorithm

    refused(flow, "signature")


def test_damaged_discovery_never_skips_the_issuer_check(flow, provider):
    provider.claim_overrides = {"iss": "https://evil.example"}
    flow.discovery = {key: value for key, value in flow.discovery.items() if key != "issuer"}

    refused(flow, "issuer")


def test_callback_may_be_a_querydict_with_lists(flow):
    url, blob = flow.begin()
    params = {key: [value] for key, value in follow_authorize(url).items()}

    assert flow.complete(params, blob).email == "ada@acme.example"


def test_rotated_keys_are_fetched_again_once(flow, provider):
    flow.run()  # caches the first key
    provider.rotate_key()

    assert flow.run().subject == "00u1abcd"
    assert provider.requests_seen.count(("GET", "/jwks")) == 2


def test_keys_are_cached_between_sign_ins(flow, provider):
    flow.run()
    flow.run()

    assert provider.requests_seen.count(("GET", "/jwks")) == 1


# --- forged or misdirected ID tokens ---------------------------------------------------------------


def test_token_signed_by_another_key_is_refused(flow, provider):
    provider.sign_with_other_key = True

    refused(flow, "signature")


def test_unsigned_token_is_refused(flow, provider):
    provider.discovery_overrides = {"id_token_signing_alg_values_supported": ["RS256", "none"]}
    flow.discovery = oidc.discover(provider.issuer)  # even when the provider claims to allow it
    provider.alg = "none"

    error = refused(flow, "signature")
    assert "algorithm we refuse (none)" in error.message


def test_hs256_signed_with_the_public_key_is_refused(flow, provider):
    provider.discovery_overrides = {"id_token_signing_alg_values_supported": ["RS256", "HS256"]}
    flow.discovery = oidc.discover(provider.issuer)  # even when the provider claims to allow it
    provider.alg = "HS256"

    error = refused(flow, "signature")
    assert "algorithm we refuse (HS256)" in error.message


def test_algorithm_the_discovery_does_not_list_is_refused(flow, provider):
    provider.alg = "PS256"
    flow.discovery = {**flow.discovery, "id_token_signing_alg_values_supported": ["RS256"]}

    refused(flow, "signature")


def test_unknown_key_id_is_refused_after_one_refetch(flow, provider):
    provider.kid_override = "somebody-elses-key"

    refused(flow, "signature")
    assert provider.requests_seen.count(("GET", "/jwks")) == 2


def test_wrong_issuer_is_refused(flow, provider):
    provider.claim_overrides = {"iss": "https://evil.example"}

    refused(flow, "issuer")


def test_missing_issuer_is_refused(flow, provider):
    provider.claim_overrides = {"iss": DROP}

    refused(flow, "issuer")


def test_token_for_another_client_is_refused(flow, provider):
    provider.claim_overrides = {"aud": "someone-else"}

    refused(flow, "audience")


def test_several_audiences_need_us_as_authorized_party(flow, provider):
    provider.claim_overrides = {"aud": [CLIENT_ID, "another-app"]}

    refused(flow, "audience")

    provider.claim_overrides = {"aud": [CLIENT_ID, "another-app"], "azp": CLIENT_ID}
    assert flow.run().subject == "00u1abcd"


def test_token_requested_by_another_party_is_refused(flow, provider):
    provider.claim_overrides = {"azp": "another-app"}

    refused(flow, "audience")


def test_wrong_nonce_is_refused(flow, provider):
    provider.claim_overrides = {"nonce": "a-nonce-from-another-attempt"}

    refused(flow, "nonce")


def test_missing_nonce_is_refused(flow, provider):
    provider.claim_overrides = {"nonce": DROP}

    refused(flow, "nonce")


def test_token_expired_beyond_the_leeway_is_refused(flow, provider):
    provider.clock_offset = -(provider.lifetime + 120)  # expired two minutes ago

    refused(flow, "expired")


def test_token_expired_within_the_leeway_is_accepted(flow, provider):
    provider.clock_offset = -(provider.lifetime + 30)  # expired thirty seconds ago

    assert flow.run(leeway=60).subject == "00u1abcd"


def test_token_issued_in_the_future_is_refused(flow, provider):
    provider.clock_offset = 600

    refused(flow, "expired")


def test_token_without_subject_is_refused(flow, provider):
    provider.claim_overrides = {"sub": DROP}

    refused(flow, "claims")


def test_replayed_token_is_refused(flow, provider):
    provider.reuse_codes = True  # the provider hands out the very same ID token again
    url, blob = flow.begin()
    params = follow_authorize(url)
    flow.complete(params, blob)

    with pytest.raises(SSOError) as caught:
        flow.complete(params, blob)
    assert caught.value.code == "replay"


def test_replay_without_jti_is_caught_by_the_token_hash(flow, provider, connection):
    provider.reuse_codes = True
    provider.include_jti = False
    url, blob = flow.begin()
    params = follow_authorize(url)
    flow.complete(params, blob)

    with pytest.raises(SSOError) as caught:
        flow.complete(params, blob)
    assert caught.value.code == "replay"
    assert SeenAssertion.objects.get(connection=connection).assertion_id.startswith("sha256:")


# --- the callback --------------------------------------------------------------------------------


def test_wrong_state_is_refused(flow):
    url, blob = flow.begin()
    params = follow_authorize(url)
    params["state"] = params["state"][:-2] + "xx"

    with pytest.raises(SSOError) as caught:
        flow.complete(params, blob)
    assert caught.value.code == "state"


@pytest.mark.parametrize(
    "tamper", ["drop_state", "blob_of_other_connection", "empty_blob", "bad_created_at", "nan_created_at"]
)
def test_callback_without_a_matching_attempt_is_refused(flow, tamper):
    url, blob = flow.begin()
    params = follow_authorize(url)
    if tamper == "drop_state":
        del params["state"]
    elif tamper == "blob_of_other_connection":
        blob["connection"] = "00000000-0000-0000-0000-000000000000"
    elif tamper == "empty_blob":
        blob = {}
    elif tamper == "nan_created_at":
        blob["created_at"] = float("nan")
    else:
        blob["created_at"] = "yesterday"

    with pytest.raises(SSOError) as caught:
        flow.complete(params, blob)
    assert caught.value.code == "state"


def test_state_older_than_ten_minutes_is_refused(flow, provider):
    url, blob = flow.begin()
    params = follow_authorize(url)
    blob["created_at"] -= 601

    with pytest.raises(SSOError) as caught:
        flow.complete(params, blob)
    assert caught.value.code == "state"
    assert ("POST", "/token") not in provider.requests_seen  # the code is never redeemed


def test_provider_error_is_reported(flow, provider):
    provider.authorize_error = "access_denied"

    error = refused(flow, "idp_error")
    assert "access_denied: The user cancelled the sign-in." in error.message


def test_forged_error_response_is_a_state_error(flow):
    _, blob = flow.begin()
    params = {"error": "access_denied", "error_description": "Call +1 555 0100 to unlock your account"}

    with pytest.raises(SSOError) as caught:
        flow.complete(params, blob)
    assert caught.value.code == "state"
    assert "555" not in caught.value.message


def test_token_endpoint_error_is_refused(flow, provider):
    provider.token_error = "invalid_grant"

    error = refused(flow, "token_exchange")
    assert "invalid_grant" in error.message


def test_wrong_client_secret_is_refused_by_the_provider(flow):
    error = refused(flow, "token_exchange", client_secret="not-the-secret")

    assert "invalid_client" in error.message


def test_tampered_code_verifier_fails_pkce(flow):
    url, blob = flow.begin()
    params = follow_authorize(url)
    blob["code_verifier"] = blob["code_verifier"][::-1]

    with pytest.raises(SSOError) as caught:
        flow.complete(params, blob)
    assert caught.value.code == "token_exchange"
    assert "PKCE" in caught.value.message


def test_redirect_uri_must_match_the_authorization_request(flow):
    error = refused(flow, "token_exchange", redirect_uri="https://evil.example/callback")

    assert "redirect_uri" in error.message


def test_slow_token_endpoint_is_a_network_error(flow, provider):
    provider.delays = {"/token": 5}

    refused(flow, "network", timeout=0.3)


def test_response_issuer_must_be_the_provider(flow, provider):
    provider.send_iss = True
    url, blob = flow.begin()
    params = follow_authorize(url)
    params["iss"] = "https://evil.example"

    with pytest.raises(SSOError) as caught:
        flow.complete(params, blob)
    assert caught.value.code == "issuer"


def test_response_issuer_required_when_the_provider_promises_it(flow, provider):
    flow.discovery = {**flow.discovery, "authorization_response_iss_parameter_supported": True}

    refused(flow, "issuer")

    provider.send_iss = True
    assert flow.run().subject == "00u1abcd"


def test_plain_http_endpoints_are_refused_at_the_callback_too(flow, provider, settings):
    url, blob = flow.begin()
    params = follow_authorize(url)
    settings.SSO_ALLOW_INSECURE_LOOPBACK = False

    with pytest.raises(SSOError) as caught:
        flow.complete(params, blob)
    assert caught.value.code == "network"
    assert ("POST", "/token") not in provider.requests_seen
