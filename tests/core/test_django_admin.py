"""The Django admin: off unless ADMIN_ENABLED, then for superusers only, and never a password-only way in.

Attacker's view: a superuser's password (phished, reused) must not open the
admin without the second factor, the platform's SSO rule or allauth's lockout;
the admin's own login form must not make a session at all.
"""

from __future__ import annotations

import time

import pytest
from django.contrib import admin
from django.test import Client, RequestFactory

from apps.accounts.services import SESSION_SIGN_IN_KEY
from tests.accounts.helpers import MFA_STAGE, enrol_totp, password_sign_in, sso_connection, totp_code
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
mounted = pytest.mark.urls("tests.core.admin_urls")


@pytest.fixture
def superuser():
    return UserFactory(email="root@bastion.example", is_staff=True, is_superuser=True)


def _mark(client: Client, **marker: object) -> None:
    session = client.session
    session[SESSION_SIGN_IN_KEY] = {"idp": "", "at": time.time(), **marker}
    session.save()


def test_admin_is_not_mounted_by_default(client) -> None:
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    assert client.get("/django-admin/").status_code == 404


@pytest.mark.parametrize(
    ("staff", "superuser", "allowed"), [(True, False, False), (False, False, False), (True, True, True)]
)
def test_only_superusers_may_use_the_admin(client, staff: bool, superuser: bool, allowed: bool) -> None:
    user = UserFactory(is_staff=staff, is_superuser=superuser)
    client.force_login(user)
    _mark(client, method="password", mfa=True)
    request = RequestFactory().get("/django-admin/")
    request.user = user
    request.session = client.session
    assert admin.site.has_permission(request) is allowed


@mounted
def test_posting_a_password_to_the_admin_login_makes_no_session(client, superuser) -> None:
    response = client.post(
        "/django-admin/login/?next=/django-admin/", {"username": superuser.email, "password": PASSWORD}
    )

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fdjango-admin%2F"
    assert "_auth_user_id" not in client.session
    assert client.get("/django-admin/").status_code == 302  # still signed out
    assert client.get("/platform/").status_code == 302


@mounted
def test_the_admin_sends_people_to_the_real_sign_in_and_back(client) -> None:
    response = client.get("/django-admin/auth/", follow=True)

    assert response.redirect_chain[-1][0] == "/accounts/login/?next=%2Fdjango-admin%2Fauth%2F"


@mounted
def test_a_session_that_skipped_the_sign_in_policy_is_refused(client, superuser) -> None:
    client.force_login(superuser)  # no sign-in record: e.g. the admin's own login form

    assert client.get("/django-admin/").status_code != 200
    assert client.get("/django-admin/login/").status_code == 403


@mounted
def test_a_superuser_without_a_second_factor_cannot_reach_the_admin(client, superuser) -> None:
    assert password_sign_in(client, superuser.email, PASSWORD).status_code == 302
    assert client.session[SESSION_SIGN_IN_KEY] == {**client.session[SESSION_SIGN_IN_KEY], "mfa": False}

    for path in ("/django-admin/", "/django-admin/accounts/user/", "/django-admin/login/"):
        assert client.get(path).status_code != 200


@mounted
def test_a_superuser_with_a_second_factor_gets_in_through_allauth(client, superuser) -> None:
    secret = enrol_totp(superuser)
    assert password_sign_in(client, superuser.email, PASSWORD, next_url="/django-admin/")["Location"] == MFA_STAGE
    assert client.post(MFA_STAGE, {"code": totp_code(secret)})["Location"] == "/django-admin/"

    assert client.get("/django-admin/").status_code == 200


@mounted
def test_a_password_session_is_refused_once_platform_sso_exists(client, superuser) -> None:
    client.force_login(superuser)
    _mark(client, method="password", mfa=True)
    assert client.get("/django-admin/").status_code == 200

    sso_connection(None, name="Platform IdP")

    assert client.get("/django-admin/").status_code != 200


@mounted
def test_an_sso_session_may_use_the_admin(client, superuser) -> None:
    client.force_login(superuser)
    _mark(client, method="saml", idp="Platform IdP", mfa=True)

    assert client.get("/django-admin/").status_code == 200
