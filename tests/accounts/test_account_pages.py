"""allauth pages render inside the console layout (no bare allauth markup, no 500s)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    ["/accounts/login/", "/accounts/password/reset/", "/accounts/password/reset/done/"],
)
def test_entrance_pages_use_the_console_card(client, path):
    response = client.get(path)
    assert response.status_code == 200
    body = response.content.decode()
    assert 'class="auth-page auth-entrance"' in body
    assert "bastion.css" in body
    assert 'class="button' in body or "<button" not in body


def test_sign_in_page_does_not_offer_sign_up(client):
    body = client.get("/accounts/login/").content.decode()
    assert "Sign in to Bastion" in body
    assert "sign up" not in body.lower()
    assert "Forgot your password?" in body


def test_signup_is_closed(client):
    response = client.get("/accounts/signup/")
    assert "closed" in response.content.decode().lower()


@pytest.mark.parametrize(
    "path",
    ["/accounts/email/", "/accounts/password/change/", "/accounts/2fa/", "/accounts/sessions/", "/accounts/logout/"],
)
def test_manage_pages_use_the_console_layout(cast, client_for, path):
    response = client_for(cast.member).get(path)
    assert response.status_code == 200, path
    body = response.content.decode()
    assert 'class="auth-page auth-manage"' in body
    assert 'aria-label="Your account"' in body
    assert "member@acme.example" in body


def test_password_reset_sends_mail_for_known_address(cast, client):
    from django.core import mail

    response = client.post("/accounts/password/reset/", {"email": cast.member.email})
    assert response.status_code == 302
    assert mail.outbox[-1].to == [cast.member.email]
