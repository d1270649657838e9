"""OpenID Connect sign-in end to end through the views, against the real loopback provider."""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.sso import crypto, oidc, services
from apps.sso.models import SSOConnection
from apps.tenants.models import Membership
from tests.sso.oidc_provider import CLIENT_ID, CLIENT_SECRET, OIDCProvider, follow_authorize
from tests.sso.test_flow_support import events, https_client, signed_in_user_id, verify_domain

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback(settings):
    settings.SSO_ALLOW_INSECURE_LOOPBACK = True
    oidc.clear_jwks_cache()
    yield
    oidc.clear_jwks_cache()


@pytest.fixture
def provider():
    with OIDCProvider() as running:
        yield running


@pytest.fixture
def acme_oidc(cast, provider) -> SSOConnection:
    """Acme's OIDC connection, created through the service (discovery fetched), tested and enabled."""
    verify_domain(cast.acme, "acme.example")
    connection = services.connection_create(
        tenant=cast.acme,
        kind="oidc",
        name="Okta OIDC",
        oidc_settings=services.OIDCSettings(
            issuer=provider.issuer, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, scopes=("email", "profile")
        ),
        preset="okta",
        actor=cast.admin,
    )
    connection.config = {**connection.config, "tested_at": timezone.now().isoformat()}
    connection.status = SSOConnection.Status.ENABLED
    connection.save()
    return connection


def _callback(client, connection, params):
    return client.get(f"/sso/oidc/{connection.public_id}/callback/", params)


def test_oidc_sign_in_provisions_and_signs_in(cast, acme_oidc) -> None:
    client = https_client()

    start = client.get(f"/sso/start/{acme_oidc.public_id}/", {"next": "/t/acme/audit/"})
    assert start.status_code == 302
    params = follow_authorize(start["Location"])
    response = _callback(client, acme_oidc, params)

    assert response.status_code == 302
    assert response["Location"] == "/t/acme/audit/"
    user = User.objects.get(email="ada@acme.example")
    assert signed_in_user_id(client) == str(user.pk)
    membership = Membership.objects.get(tenant=cast.acme, user=user)
    assert membership.idp_groups == ["engineering", "admins"]
    assert client.session["bastion_auth"]["method"] == "oidc"
    event = events("auth.sign_in", tenant=cast.acme)[-1]
    assert (event.result, event.metadata["method"], event.metadata["idp"]) == ("success", "oidc", "Okta OIDC")


def test_redirect_uri_is_the_connections_callback(cast, acme_oidc) -> None:
    start = https_client().get(f"/sso/start/{acme_oidc.public_id}/")

    assert (
        f"redirect_uri=https%3A%2F%2Fbastion.example.com%2Fsso%2Foidc%2F{acme_oidc.public_id}%2Fcallback%2F"
        in (start["Location"])
    )


def test_login_hint_from_discovery_is_passed_on(cast, acme_oidc) -> None:
    start = https_client().get(f"/sso/start/{acme_oidc.public_id}/", {"login_hint": "ada@acme.example"})

    assert "login_hint=ada%40acme.example" in start["Location"]


def test_callback_in_another_browser_is_refused(cast, acme_oidc) -> None:
    """The code and state reach a browser that did not start the flow (login CSRF): refused."""
    start = https_client().get(f"/sso/start/{acme_oidc.public_id}/")
    params = follow_authorize(start["Location"])
    victim = https_client()

    response = _callback(victim, acme_oidc, params)

    assert response.status_code == 400
    assert signed_in_user_id(victim) is None
    assert events("auth.sign_in", tenant=cast.acme)[-1].metadata["code"] == "state"


def test_idp_error_is_shown_and_audited(cast, acme_oidc, provider) -> None:
    provider.authorize_error = "access_denied"
    client = https_client()
    start = client.get(f"/sso/start/{acme_oidc.public_id}/")

    response = _callback(client, acme_oidc, follow_authorize(start["Location"]))

    assert response.status_code == 400
    assert b"refused the sign-in" in response.content
    assert signed_in_user_id(client) is None
    event = events("auth.sign_in", tenant=cast.acme)[-1]
    assert (event.result, event.metadata["code"]) == ("failure", "idp_error")


def test_client_secret_is_encrypted_and_never_in_audit_or_pages(cast, acme_oidc) -> None:
    assert CLIENT_SECRET not in acme_oidc.secret_encrypted
    assert crypto.decrypt(acme_oidc.secret_encrypted) == CLIENT_SECRET
    admin = https_client(cast.admin)

    pages = [
        admin.get(f"/t/acme/settings/sso/connections/{acme_oidc.pk}/"),
        admin.get(f"/t/acme/settings/sso/connections/{acme_oidc.pk}/edit/"),
        admin.get("/t/acme/settings/sso/"),
    ]

    for page in pages:
        assert page.status_code == 200
        assert CLIENT_SECRET.encode() not in page.content
        assert acme_oidc.secret_encrypted.encode() not in page.content
    for event in AuditEvent.objects.all():
        text = str(event.metadata)
        assert CLIENT_SECRET not in text
        assert acme_oidc.secret_encrypted not in text


def test_secret_is_not_rendered_back_after_a_failed_edit(cast, acme_oidc, provider) -> None:
    admin = https_client(cast.admin)
    new_secret = "brand-new-secret-value-123"

    response = admin.post(
        f"/t/acme/settings/sso/connections/{acme_oidc.pk}/edit/",
        {
            "name": "",
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret": new_secret,
            "scopes": "openid",
        },
    )

    assert response.status_code == 400
    assert new_secret.encode() not in response.content
    acme_oidc.refresh_from_db()
    assert crypto.decrypt(acme_oidc.secret_encrypted) == CLIENT_SECRET


def test_rotated_secret_is_used_for_the_token_request(cast, acme_oidc, provider) -> None:
    provider.client_secret = "rotated-at-the-idp"
    admin = https_client(cast.admin)
    saved = admin.post(
        f"/t/acme/settings/sso/connections/{acme_oidc.pk}/edit/",
        {
            "name": "Okta OIDC",
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret": "rotated-at-the-idp",
            "scopes": "openid email profile",
            "preset": "okta",
        },
    )
    assert saved.status_code == 302
    acme_oidc.refresh_from_db()
    assert acme_oidc.status == SSOConnection.Status.ENABLED  # an enabled connection stays enabled
    update = events("sso.connection_update", tenant=cast.acme)[-1]
    assert update.metadata["client_auth_changed"] is True
    assert "rotated-at-the-idp" not in str(update.metadata)
    client = https_client()

    start = client.get(f"/sso/start/{acme_oidc.public_id}/")
    response = _callback(client, acme_oidc, follow_authorize(start["Location"]))

    assert response.status_code == 302
    assert signed_in_user_id(client) is not None
