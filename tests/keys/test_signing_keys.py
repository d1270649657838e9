"""Signing keys rotate by themselves; the JWKS publishes a key before it signs and after its last token."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.keys import crypto, services, signing, tasks
from apps.keys.models import ClientSecret, SigningKey
from apps.keys.tokens import TokenError, verify_access_token
from config.celery import app as celery_app
from tests.keys.helpers import default_audience, issue_token, make_client

pytestmark = pytest.mark.django_db


def _kids() -> set[str]:
    return {key["kid"] for key in signing.jwks()["keys"]}


def _kid(token: str) -> str:
    return jwt.get_unverified_header(token)["kid"]


@pytest.fixture
def created(cast):
    return make_client(tenant=cast.acme)


def test_next_key_is_published_before_it_signs_and_old_one_after_its_last_token(created):
    first = _kid(issue_token(created))
    start = SigningKey.objects.get(kid=first).activated_at
    assert services.signing_keys_rotate(now=start + timedelta(days=1)) == []  # nothing due yet
    services.signing_keys_rotate(now=start + timedelta(days=29))  # 48 h ahead of day 30
    upcoming = SigningKey.objects.get(status="next")
    assert _kids() == {first, upcoming.kid}  # published ...
    assert _kid(issue_token(created)) == first  # ... but not signing yet
    assert upcoming.activates_at >= start + timedelta(days=30)
    services.signing_keys_rotate(now=upcoming.activates_at)
    signing.forget_ring()
    token = issue_token(created)
    assert _kid(token) == upcoming.kid
    old = SigningKey.objects.get(kid=first)
    assert old.status == "retired"
    assert old.publish_until >= old.retired_at + timedelta(minutes=15)
    assert first in _kids()  # its tokens may still be alive
    services.signing_keys_rotate(now=old.publish_until + timedelta(seconds=1))
    old.refresh_from_db()
    assert old.private_key == ""  # nothing left to sign with
    SigningKey.objects.filter(pk=old.pk).update(publish_until=timezone.now() - timedelta(seconds=1))
    signing.forget_ring()
    assert first not in _kids()
    verify_access_token(token, audience=default_audience())
    assert AuditEvent.objects.filter(action="signing_key.rotate").exists()


def test_rotation_is_idempotent(created):
    issue_token(created)
    start = SigningKey.objects.get(status="active").activated_at
    services.signing_keys_rotate(now=start + timedelta(days=29))
    services.signing_keys_rotate(now=start + timedelta(days=29))
    assert SigningKey.objects.filter(status="next").count() == 1


def test_emergency_revocation_ends_its_tokens_at_once(created, cast, django_capture_on_commit_callbacks):
    token = issue_token(created)
    verify_access_token(token, audience=default_audience())  # warm
    key = SigningKey.objects.get(kid=_kid(token))
    with django_capture_on_commit_callbacks(execute=True):
        services.signing_key_revoke(key=key, reason="leaked", actor=cast.staff)
    with pytest.raises(TokenError) as caught:
        verify_access_token(token, audience=default_audience())
    assert caught.value.reason == "revoked_key"
    assert key.kid not in _kids()
    fresh = issue_token(created)
    assert _kid(fresh) != key.kid
    verify_access_token(fresh, audience=default_audience())
    key.refresh_from_db()
    assert key.private_key == ""
    assert AuditEvent.objects.get(action="signing_key.revoke").actor_id == str(cast.staff.pk)


def test_rs256_clients_get_rs256_tokens(cast):
    created = make_client(tenant=cast.acme, signing_alg="RS256")
    token = issue_token(created)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert verify_access_token(token, audience=default_audience()).client.pk == created.client.pk


def test_jwks_has_public_halves_only_and_caching_headers(client, created):
    issue_token(created)
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200
    assert "public, max-age=" in response["Cache-Control"]
    keys = response.json()["keys"]
    assert keys
    for key in keys:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
        assert key["use"] == "sig"
    again = client.get("/.well-known/jwks.json", HTTP_IF_NONE_MATCH=response["ETag"])
    assert again.status_code == 304


def test_server_metadata(client):
    body = client.get("/.well-known/oauth-authorization-server").json()
    assert body["token_endpoint"].endswith("/api/v1/oauth/token")
    assert body["grant_types_supported"] == ["client_credentials"]
    assert set(body["token_endpoint_auth_methods_supported"]) == {"client_secret_basic", "client_secret_post"}


def test_secrets_at_rest(created):
    issue_token(created)
    key = SigningKey.objects.get(status="active")
    assert "PRIVATE KEY" not in key.private_key
    assert b"PRIVATE KEY" in crypto.decrypt(key.private_key)
    stored = ClientSecret.objects.get(client=created.client)
    assert created.secret not in stored.digest
    assert crypto.secret_matches(created.secret, stored.digest)
    assert not AuditEvent.objects.filter(metadata__icontains=created.secret[4:]).exists()


def test_beat_runs_the_rotation(created):
    assert celery_app.conf.beat_schedule["keys-rotate-signing-keys"]["task"] == tasks.rotate_signing_keys.name
    assert tasks.rotate_signing_keys.delay().get() == []
