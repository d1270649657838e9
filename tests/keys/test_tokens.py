"""Issuing and verifying access tokens: the happy path and the claims (RFC 9068)."""

from __future__ import annotations

from urllib.parse import urlencode

import jwt
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.keys import conf
from apps.keys.tokens import TokenError, verify_access_token
from tests.keys.helpers import FORM, default_audience, fetch_token, issue_token, make_client, request_token

pytestmark = pytest.mark.django_db


def test_token_endpoint_issues_a_verifiable_rfc9068_token(client, cast):
    created = make_client(tenant=cast.acme)
    token = fetch_token(client, created)
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt"
    assert header["alg"] == "ES256"
    assert header["kid"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert {"iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope", "tid"} <= set(claims)
    assert claims["tid"] == cast.acme.pk
    assert claims["sub"] == created.client.client_id
    assert claims["exp"] - claims["iat"] <= 15 * 60
    ctx = verify_access_token(token, audience=default_audience())
    assert ctx.client.pk == created.client.pk
    assert ctx.tenant.pk == cast.acme.pk
    assert ctx.scopes == {"authorize", "tool-calls", "me", "usage", "budget"}


def test_client_secret_post_works_too(client, cast):
    created = make_client(tenant=cast.acme)
    response = client.post(
        "/api/v1/oauth/token",
        urlencode(
            {"grant_type": "client_credentials", "client_id": created.client.client_id, "client_secret": created.secret}
        ),
        FORM,
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"


def test_warm_verification_makes_no_query(cast):
    created = make_client(tenant=cast.acme)
    token = issue_token(created)
    verify_access_token(token, audience=default_audience())
    with CaptureQueriesContext(connection) as queries:
        verify_access_token(token, audience=default_audience())
    assert len(queries) == 0


def test_wrong_secret_is_invalid_client_in_rfc_shape(client, cast):
    created = make_client(tenant=cast.acme)
    created = type(created)(client=created.client, secret="bcs_wrong")
    response = request_token(client, created)
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response["WWW-Authenticate"].startswith("Basic")


def test_wrong_audience_refused(cast):
    token = issue_token(make_client(tenant=cast.acme))
    with pytest.raises(TokenError) as caught:
        verify_access_token(token, audience=conf.issuer() + "/other")
    assert caught.value.reason == "wrong_audience"
