"""The attacker's side of access tokens: every forged, stale or misdirected token is refused and audited."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.keys import conf, services, signing
from apps.keys.models import ClientSecret, SigningKey
from apps.keys.tokens import TokenError, verify_access_token
from tests.keys.helpers import default_audience, fetch_token, issue_token, make_client, request_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_client(cast):
    return make_client(tenant=cast.acme, builtin_role="developer")


def _claims(created, **overrides):
    now = int(time.time())
    claims = {
        "iss": conf.issuer(),
        "sub": created.client.client_id,
        "aud": default_audience(),
        "exp": now + 300,
        "iat": now,
        "jti": "j-" + str(now),
        "client_id": created.client.client_id,
        "scope": "authorize",
        "tid": created.client.tenant_id,
    }
    claims.update(overrides)
    return claims


def _forge(created, *, headers=None, **overrides) -> str:
    """A token signed with the real active key (what a stolen-but-valid key could do), claims as given."""
    issue_token(created)  # makes sure the ES256 key exists
    kid, private = signing.signer("ES256")
    return jwt.encode(
        _claims(created, **overrides),
        private,
        algorithm="ES256",
        headers={"kid": kid, "typ": "at+jwt", **(headers or {})},
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _refused(token: str, reason: str, audience: str | None = None) -> TokenError:
    with pytest.raises(TokenError) as caught:
        verify_access_token(token, audience=audience or default_audience())
    assert caught.value.reason == reason, caught.value.description
    assert caught.value.code == "invalid_token"
    return caught.value


def _last_rejection() -> AuditEvent:
    return AuditEvent.objects.filter(action="apiclient.token_rejected").order_by("-id").first()


def test_expired_token_refused_and_audited_on_the_tenant_chain(acme_client, cast):
    token = _forge(acme_client, exp=int(time.time()) - 1, iat=int(time.time()) - 100)
    _refused(token, "expired")
    event = _last_rejection()
    assert event.result == "failure"
    assert event.tenant_id == cast.acme.pk
    assert event.metadata["reason"] == "expired"


def test_cached_token_refused_once_it_expires(acme_client, monkeypatch):
    token = issue_token(acme_client)
    verify_access_token(token, audience=default_audience())  # now warm in this process
    later = time.time() + 16 * 60
    monkeypatch.setattr("apps.keys.tokens.time.time", lambda: later)
    _refused(token, "expired")


def test_unknown_kid_refused_on_the_platform_chain(acme_client):
    token = _forge(acme_client, headers={"kid": "not-a-key"})
    _refused(token, "unknown_key")
    event = _last_rejection()
    # The signature was never checked: the token's tid is not trusted to pick a chain.
    assert event.tenant_id is None


def test_token_of_a_rotated_out_key_refused(acme_client):
    old_token = issue_token(acme_client)
    old = SigningKey.objects.get(alg="ES256", status="active")
    start = timezone.now()
    services.signing_keys_rotate(now=start + timedelta(days=29))  # publishes the next key
    services.signing_keys_rotate(now=start + timedelta(days=31))  # switches; old retires
    old.refresh_from_db()
    assert old.status == "retired"
    # Still published until its last token expired:
    assert old.kid in {k["kid"] for k in signing.jwks()["keys"]}
    verify_access_token(old_token, audience=default_audience())
    SigningKey.objects.filter(pk=old.pk).update(publish_until=timezone.now() - timedelta(seconds=1))
    signing.forget_ring()
    services.signing_keys_rotate()
    assert old.kid not in {k["kid"] for k in signing.jwks()["keys"]}
    _refused(old_token, "revoked_key")  # warm: the ring no longer holds its key
    services.signing_keys_rotate()
    from apps.keys import tokens

    tokens.clear_local_caches()
    _refused(old_token, "unknown_key")  # cold


def test_alg_none_refused(acme_client):
    kid = issue_token(acme_client) and signing.signer("ES256")[0]
    token = jwt.encode(_claims(acme_client), None, algorithm="none", headers={"kid": kid, "typ": "at+jwt"})
    _refused(token, "bad_algorithm")


def test_hs256_signed_with_the_public_key_refused(acme_client):
    kid, private = (issue_token(acme_client), signing.signer("ES256"))[1]
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "kid": kid, "typ": "at+jwt"}).encode())
    payload = _b64(json.dumps(_claims(acme_client)).encode())
    signature = _b64(hmac.new(public_pem, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    _refused(f"{header}.{payload}.{signature}", "bad_algorithm")
    # The same with the JWKS's JSON as the HMAC key:
    jwk = json.dumps(signing.jwks()["keys"][0]).encode()
    signature = _b64(hmac.new(jwk, f"{header}.{payload}".encode(), hashlib.sha256).digest())
    _refused(f"{header}.{payload}.{signature}", "bad_algorithm")


def test_alg_switched_to_rs256_on_an_es256_key_refused(acme_client):
    token = _forge(acme_client)
    header, payload, signature = token.split(".")
    parsed = json.loads(base64.urlsafe_b64decode(header + "=="))
    parsed["alg"] = "RS256"
    _refused(f"{_b64(json.dumps(parsed).encode())}.{payload}.{signature}", "bad_algorithm")


def test_tampered_payload_refused(acme_client, cast):
    token = issue_token(acme_client)
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["tid"] = cast.globex.pk
    _refused(f"{header}.{_b64(json.dumps(claims).encode())}.{signature}", "bad_signature")


def test_wrong_audience_refused(acme_client):
    token = issue_token(acme_client)
    _refused(token, "wrong_audience", audience="https://other.example/api")
    assert _last_rejection().metadata["audience"] == [default_audience()]


def test_wrong_issuer_refused(acme_client):
    _refused(_forge(acme_client, iss="https://evil.example"), "wrong_issuer")


def test_token_naming_another_tenant_refused(acme_client, cast):
    # Even signed by our key: the client is Acme's, so a token that says Globex is not honoured.
    _refused(_forge(acme_client, tid=cast.globex.pk), "unknown_client")


def test_not_an_access_token_refused(acme_client):
    _refused(_forge(acme_client, headers={"typ": "JWT"}), "malformed")
    _refused("not.a.jwt", "malformed")
    _refused("", "malformed")


def test_disabled_clients_unexpired_token_refused_at_once(acme_client, django_capture_on_commit_callbacks):
    token = issue_token(acme_client)
    verify_access_token(token, audience=default_audience())  # warm
    with django_capture_on_commit_callbacks(execute=True):
        services.apiclient_disable(client=acme_client.client)
    _refused(token, "revoked_client")
    assert _last_rejection().metadata["client_id"] == acme_client.client.client_id


def test_replay_after_disable_refused_even_after_re_enable(client, acme_client, django_capture_on_commit_callbacks):
    token = fetch_token(client, acme_client)
    verify_access_token(token, audience=default_audience())
    with django_capture_on_commit_callbacks(execute=True):
        services.apiclient_disable(client=acme_client.client)
    _refused(token, "revoked_client")
    with django_capture_on_commit_callbacks(execute=True):
        services.apiclient_enable(client=acme_client.client)
    _refused(token, "revoked_client")  # issued before the disable: never again
    # ...and the disabled period gave out no tokens; a fresh one works again.
    time.sleep(1.1)  # tokens_not_before is whole seconds
    verify_access_token(fetch_token(client, acme_client), audience=default_audience())


def test_disabled_client_gets_no_token(client, acme_client):
    services.apiclient_disable(client=acme_client.client)
    response = request_token(client, acme_client)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_secret_rotation_overlap_then_old_secret_refused(client, acme_client):
    old = acme_client
    new_secret = services.apiclient_secret_rotate(client=old.client, overlap=timedelta(hours=1))
    new = type(old)(client=old.client, secret=new_secret)
    assert request_token(client, old).status_code == 200  # both work during the overlap
    assert request_token(client, new).status_code == 200
    ClientSecret.objects.filter(expires_at__isnull=False).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = request_token(client, old)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert request_token(client, new).status_code == 200
    failure = AuditEvent.objects.filter(action="apiclient.auth_failed").order_by("-id").first()
    assert failure.metadata["reason"] == "bad_secret"
    assert failure.tenant_id == old.client.tenant_id


def test_revoked_secret_refused_at_once(client, acme_client):
    services.apiclient_secret_rotate(client=acme_client.client)
    old = ClientSecret.objects.filter(client=acme_client.client).order_by("id").first()
    services.apiclient_secret_revoke(secret=old)
    assert request_token(client, acme_client).status_code == 401


def test_failed_client_auth_is_rate_limited_per_client_id(client, acme_client, settings):
    settings.KEYS_TOKEN_FAILURE_RATE_PER_CLIENT = "3/m"
    wrong = type(acme_client)(client=acme_client.client, secret="bcs_guess")
    for _ in range(3):
        assert request_token(client, wrong).status_code == 401
    response = request_token(client, acme_client)  # even the right secret waits now
    assert response.status_code == 429
    assert int(response["Retry-After"]) >= 1
    assert response.json()["error"] == "invalid_client"
    reasons = list(AuditEvent.objects.filter(action="apiclient.auth_failed").values_list("metadata__reason", flat=True))
    assert reasons.count("bad_secret") == 3
    assert "rate_limited" in reasons


def test_failed_client_auth_is_rate_limited_per_ip(client, cast, settings):
    settings.KEYS_TOKEN_FAILURE_RATE_PER_IP = "3/m"
    for n in range(3):
        response = client.post(
            "/api/v1/oauth/token",
            f"grant_type=client_credentials&client_id=bc_nobody{n}&client_secret=x",
            "application/x-www-form-urlencoded",
        )
        assert response.status_code == 401
    victim = make_client(tenant=cast.acme)
    assert request_token(client, victim).status_code == 429


def test_unknown_client_and_bad_requests_answer_in_rfc_shape(client, acme_client):
    response = client.post("/api/v1/oauth/token", "grant_type=client_credentials", "application/x-www-form-urlencoded")
    assert response.status_code == 401
    assert set(response.json()) == {"error", "error_description"}
    assert request_token(client, acme_client, grant_type="password").json()["error"] == "unsupported_grant_type"
    assert request_token(client, acme_client, scope="admin").json()["error"] == "invalid_scope"
    assert request_token(client, acme_client, audience="https://evil.example").json()["error"] == "invalid_target"
    assert client.post("/api/v1/oauth/token", {"grant_type": "client_credentials"}).status_code == 400  # multipart
    assert client.get("/api/v1/oauth/token").status_code == 405
