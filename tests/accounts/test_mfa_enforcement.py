"""After a password sign-in, whoever must use MFA and has none can only enrol; then the console opens."""

from __future__ import annotations

import time

import pytest
from allauth.mfa.models import Authenticator
from django.core.cache import cache

from apps.accounts import services
from apps.audit.models import AuditEvent
from tests.accounts.helpers import (
    MFA_STAGE,
    TOTP_ACTIVATE,
    enrol_totp,
    password_sign_in,
    set_policy,
    totp_code,
)
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_caches():
    """Rate limits and used TOTP codes live in the cache."""
    cache.clear()
    yield
    cache.clear()


def _enrol_through_the_page(client) -> str:
    page = client.get(TOTP_ACTIVATE)
    assert page.status_code == 200, page.get("Location")
    secret = client.session["mfa.totp.secret"]
    response = client.post(TOTP_ACTIVATE, {"code": totp_code(secret)})
    assert response.status_code == 302, response.content.decode()[:2000]
    return secret


def test_bootstrap_owner_must_enrol_before_reaching_the_tenant(cast, client):
    assert password_sign_in(client, cast.owner.email, PASSWORD).status_code == 302
    marker = client.session[services.SESSION_SIGN_IN_KEY]
    assert (marker["method"], marker["mfa"]) == ("password", False)

    for path in ("/", "/t/acme/", "/t/acme/members/", "/accounts/password/change/", "/accounts/sessions/"):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response["Location"] == TOTP_ACTIVATE, path

    page = client.get(TOTP_ACTIVATE)
    assert page.status_code == 200  # the password just typed counts as the re-authentication
    body = page.content.decode()
    assert "Two-factor authentication is required" in body
    assert "Sign out instead" in body

    _enrol_through_the_page(client)
    assert Authenticator.objects.filter(user=cast.owner, type="totp").exists()
    assert client.get("/t/acme/").status_code == 200
    assert client.get("/accounts/sessions/").status_code == 200


def test_after_enrolling_the_next_sign_in_goes_through_the_mfa_stage(cast, client):
    secret = enrol_totp(cast.owner)
    response = password_sign_in(client, cast.owner.email, PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == MFA_STAGE
    assert "_auth_user_id" not in client.session  # not signed in before the second factor

    wrong = client.post(MFA_STAGE, {"code": "000000" if totp_code(secret) != "000000" else "111111"})
    assert wrong.status_code == 200
    failed = AuditEvent.objects.get(
        tenant__isnull=True, action="auth.sign_in", result="failure", actor_id=str(cast.owner.pk)
    )
    assert failed.metadata["reason"] == "mfa_failed"

    done = client.post(MFA_STAGE, {"code": totp_code(secret)})
    assert done.status_code == 302
    assert client.session["_auth_user_id"] == str(cast.owner.pk)
    assert client.session[services.SESSION_SIGN_IN_KEY]["mfa"] is True
    event = AuditEvent.objects.filter(tenant__isnull=True, action="auth.sign_in", result="success").get()
    assert event.metadata == {"method": "password", "mfa": True}
    assert client.get("/t/acme/").status_code == 200


@pytest.mark.parametrize("who", ["admin", "staff", "member"])
def test_everyone_the_policy_names_is_held_at_enrolment(cast, client, who):
    user = getattr(cast, who)
    assert password_sign_in(client, user.email, PASSWORD).status_code == 302
    target = "/platform/" if who == "staff" else "/t/acme/"
    assert client.get(target)["Location"] == TOTP_ACTIVATE


def test_members_of_a_tenant_without_the_mfa_rule_go_straight_in(cast, client):
    set_policy(cast.acme, mfa_required_local=False)
    assert password_sign_in(client, cast.member.email, PASSWORD).status_code == 302
    assert client.get("/t/acme/").status_code == 200


def test_a_member_is_held_once_the_tenant_turns_the_rule_on(cast, client):
    set_policy(cast.acme, mfa_required_local=False)
    assert password_sign_in(client, cast.member.email, PASSWORD).status_code == 302
    assert client.get("/t/acme/").status_code == 200
    set_policy(cast.acme, mfa_required_local=True)
    session = client.session
    marker = session[services.SESSION_SIGN_IN_KEY]
    marker["checked"] = time.time() - 120  # the cached verdict is older than a minute
    session[services.SESSION_SIGN_IN_KEY] = marker
    session.save()
    assert client.get("/t/acme/")["Location"] == TOTP_ACTIVATE


def test_enrolment_pages_sign_out_and_health_stay_reachable(cast, client):
    password_sign_in(client, cast.owner.email, PASSWORD)
    assert client.get("/accounts/2fa/").status_code == 200
    assert client.get("/healthz").status_code == 200
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_htmx_requests_are_sent_to_enrolment_with_hx_redirect(cast, client):
    password_sign_in(client, cast.owner.email, PASSWORD)
    response = client.get("/t/acme/members/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == TOTP_ACTIVATE


def test_sso_sessions_are_not_forced_through_local_enrolment(cast, client_for):
    client = client_for(cast.owner)
    session = client.session
    now = time.time()
    session[services.SESSION_SIGN_IN_KEY] = {"method": "oidc", "idp": "Entra", "mfa": False, "at": now}
    session["bastion_sso"] = {"connection": "x", "tenant": cast.acme.pk, "at": now}  # through Acme's own IdP
    session.save()
    assert client.get("/t/acme/").status_code == 200


def test_mark_session_sign_in_records_the_method_and_audits(cast, client_for, rf):
    from django.contrib.sessions.backends.db import SessionStore

    request = rf.get("/")
    request.session = SessionStore()
    request.user = cast.admin
    marker = services.mark_session_sign_in(request, method="saml", idp="Acme Okta", mfa=True, tenant=cast.acme)
    assert (marker["method"], marker["idp"], marker["mfa"]) == ("saml", "Acme Okta", True)
    assert request.session[services.SESSION_CLOCK_KEY]["start"] == marker["at"]
    event = AuditEvent.objects.get(action="auth.sign_in")
    assert event.tenant_id == cast.acme.pk
    assert event.metadata == {"method": "saml", "idp": "Acme Okta", "mfa": True}
    with pytest.raises(ValueError, match="unknown sign-in method"):
        services.mark_session_sign_in(request, method="magic")


@pytest.mark.django_db(transaction=True)
def test_enrolment_rotates_the_session_key_and_is_audited(transactional_db, client):
    """Adding a factor is a privilege change: the session gets a new key (allauth signals it after commit)."""
    from allauth.usersessions.models import UserSession

    from tests.factories import MembershipFactory, TenantFactory, UserFactory

    owner = UserFactory(email="boot@acme.example")
    MembershipFactory(tenant=TenantFactory(slug="boot"), user=owner, role="owner")
    password_sign_in(client, owner.email, PASSWORD)
    client.get("/accounts/2fa/")  # the session is now in the session list
    before = client.session.session_key
    _enrol_through_the_page(client)
    after = client.session.session_key
    assert after != before
    assert client.session["_auth_user_id"] == str(owner.pk)  # still signed in
    assert client.session[services.SESSION_SIGN_IN_KEY]["mfa"] is True
    assert list(UserSession.objects.filter(user=owner).values_list("session_key", flat=True)) == [after]
    assert client.get("/t/boot/").status_code == 200
    assert AuditEvent.objects.filter(action="auth.mfa_add", actor_id=str(owner.pk), metadata__type="totp").exists()
