"""Sign-in through allauth end to end: audit events for success, failure and sign-out, and the lockout."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client

from apps.audit.models import AuditEvent
from tests.conftest import PASSWORD

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    """allauth counts failed attempts in the cache; each test starts from zero."""
    cache.clear()
    yield
    cache.clear()


def _sign_ins():
    return AuditEvent.objects.filter(action="auth.sign_in", tenant=None).order_by("id")


def test_correct_password_signs_in_and_is_audited(cast, client):
    response = client.post(LOGIN, {"login": cast.member.email, "password": PASSWORD})
    assert response.status_code == 302
    assert "_auth_user_id" in client.session
    (event,) = _sign_ins()
    assert (event.result, event.actor_type, event.actor_id) == ("success", "user", str(cast.member.pk))
    assert event.metadata == {"method": "password", "mfa": False}
    assert event.ip == "127.0.0.1"
    assert event.request_id  # the request context reached the audit row


def test_wrong_password_is_refused_and_audited_without_the_password(cast, client):
    response = client.post(LOGIN, {"login": cast.member.email, "password": "not the password"})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "not correct" in response.content.decode()
    (event,) = _sign_ins()
    assert (event.result, event.actor_type) == ("failure", "anonymous")
    assert event.metadata["identifier"] == cast.member.email
    assert "not the password" not in str(event.metadata)


def test_unknown_account_is_audited_as_failure(db, client):
    client.post(LOGIN, {"login": "nobody@example.com", "password": "whatever it is"})
    (event,) = _sign_ins()
    assert event.result == "failure"
    assert event.metadata["identifier"] == "nobody@example.com"


def test_sign_out_is_audited(cast, client):
    client.post(LOGIN, {"login": cast.member.email, "password": PASSWORD})
    response = client.post("/accounts/logout/")
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(tenant__isnull=True, action="auth.sign_out")
    assert event.actor_id == str(cast.member.pk)


def test_repeated_failures_lock_the_account_with_a_clear_message(cast, client):
    for _ in range(5):
        response = client.post(LOGIN, {"login": cast.member.email, "password": "wrong guess"})
        assert response.status_code == 200
    locked = client.post(LOGIN, {"login": cast.member.email, "password": "wrong guess"})
    assert locked.status_code in (200, 429)
    body = locked.content.decode()
    assert "Too many failed sign-in attempts" in body
    assert "wait and try again, or reset your password" in body
    # While locked, even the right password does not get in.
    still_locked = client.post(LOGIN, {"login": cast.member.email, "password": PASSWORD})
    assert "Too many failed sign-in attempts" in still_locked.content.decode()
    assert "_auth_user_id" not in client.session
    assert _sign_ins().filter(result="failure").count() == 5  # lockouts are refused before authentication
    # The lockout itself is audited: one denied attempt per refused try, naming the account.
    lockouts = _sign_ins().filter(result="denied")
    assert lockouts.count() == 2
    assert {e.metadata["reason"] for e in lockouts} == {"rate_limited"}
    assert {e.metadata["identifier"] for e in lockouts} == {cast.member.email}
    assert all(e.ip == "127.0.0.1" for e in lockouts)


def test_failures_from_one_address_lock_that_address_out(cast, client):
    """Per IP: ten failures against any accounts from one address, and that address must wait."""
    for index in range(10):
        client.post(LOGIN, {"login": f"guess{index}@acme.example", "password": "wrong guess"})
    response = client.post(LOGIN, {"login": cast.viewer.email, "password": PASSWORD})
    assert "Too many failed sign-in attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert _sign_ins().filter(result="denied", metadata__reason="rate_limited").count() == 1
    elsewhere = Client(REMOTE_ADDR="10.9.8.7")
    assert elsewhere.post(LOGIN, {"login": cast.viewer.email, "password": PASSWORD}).status_code == 302


def test_lockout_is_per_account(cast, client):
    for _ in range(6):
        client.post(LOGIN, {"login": cast.member.email, "password": "wrong guess"})
    response = client.post(LOGIN, {"login": cast.viewer.email, "password": PASSWORD})
    assert response.status_code == 302


def test_unverified_address_cannot_sign_in(db, client):
    from tests.factories import UserFactory

    user = UserFactory(email="unverified@example.com", verified=False)
    response = client.post(LOGIN, {"login": user.email, "password": PASSWORD})
    assert "_auth_user_id" not in client.session
    assert response.status_code == 302
    assert response["Location"] == "/accounts/confirm-email/"


def test_over_long_login_input_is_a_form_error(db, client):
    response = client.post(LOGIN, {"login": "a" * 5000 + "@example.com", "password": "p" * 5000})
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
