"""The sign-in form applies the SSO rules: refused admins see the way in; every refusal is audited."""

from __future__ import annotations

import time

import pytest
from django.core.cache import cache

from apps.accounts import services
from apps.audit.models import AuditEvent
from apps.tenants.models import Membership
from tests.accounts.helpers import password_sign_in, set_policy, sso_connection
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def _denials():
    return AuditEvent.objects.filter(action="auth.sign_in", result="denied").order_by("id")


def test_admin_of_a_tenant_with_sso_is_refused_with_the_way_in_and_audited(cast, client):
    connection = sso_connection(cast.acme, name="Acme Okta")
    response = password_sign_in(client, cast.admin.email, PASSWORD)
    assert response.status_code == 200  # the form again, not a 500
    assert "_auth_user_id" not in client.session
    body = response.content.decode()
    assert "You are an administrator of Acme Corp, which uses single sign-on" in body
    assert f'<a href="/sso/start/{connection.public_id}/">Sign in with Acme Okta</a>' in body
    (event,) = _denials()
    assert event.tenant_id == cast.acme.pk  # the tenant's admins see it in their log
    assert (event.actor_type, event.actor_id, event.target_id) == ("user", str(cast.admin.pk), str(cast.admin.pk))
    assert event.metadata["reason"] == "sso_required"
    assert event.metadata["method"] == "password"
    assert event.metadata["rule"] == "admin"
    assert event.metadata["connection"] == str(connection.public_id)
    assert event.ip == "127.0.0.1"
    assert not AuditEvent.objects.filter(action="auth.sign_in", result="success").exists()


def test_the_refusal_escapes_names_from_the_database(cast, client):
    cast.acme.name = "<script>alert(1)</script>"
    cast.acme.save()
    sso_connection(cast.acme, name="<b>IdP</b>")
    body = password_sign_in(client, cast.owner.email, PASSWORD).content.decode()
    assert "<script>alert(1)</script>" not in body
    assert "&lt;script&gt;" in body
    assert "Sign in with &lt;b&gt;IdP&lt;/b&gt;" in body


def test_a_wrong_password_does_not_reveal_the_sso_tenant(cast, client):
    sso_connection(cast.acme)
    body = password_sign_in(client, cast.admin.email, "not the password").content.decode()
    assert "Acme Corp" not in body
    assert "single sign-on" not in body
    assert not _denials().exists()
    assert AuditEvent.objects.filter(tenant__isnull=True, action="auth.sign_in", result="failure").count() == 1


def test_member_may_use_a_password_unless_the_tenant_requires_sso(cast, client):
    sso_connection(cast.acme)
    response = password_sign_in(client, cast.member.email, PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(cast.member.pk)
    client.logout()

    set_policy(cast.acme, sso_required=True)
    refused = password_sign_in(client, cast.member.email, PASSWORD)
    assert refused.status_code == 200
    assert "Acme Corp requires single sign-on for every member" in refused.content.decode()
    assert "_auth_user_id" not in client.session
    assert _denials().get().metadata["rule"] == "member"


def test_staff_are_refused_once_platform_sso_is_enabled(cast, client):
    assert password_sign_in(client, cast.staff.email, PASSWORD).status_code == 302
    client.logout()
    connection = sso_connection(None, name="Staff Entra")
    response = password_sign_in(client, cast.staff.email, PASSWORD)
    body = response.content.decode()
    assert "Platform staff sign in through single sign-on" in body
    assert f'href="/sso/start/{connection.public_id}/"' in body
    event = _denials().get()
    assert event.tenant_id is None
    assert (event.metadata["rule"], event.metadata["reason"]) == ("staff", "sso_required")


def test_attacker_cannot_use_the_password_through_a_tenant_without_sso(cast, client):
    """Member of Acme (no SSO requirement) and admin of Globex (SSO): the password is refused anyway."""
    MembershipFactory(tenant=cast.globex, user=cast.member, role=Membership.Role.ADMIN)
    sso_connection(cast.globex, name="Globex Okta")
    response = password_sign_in(client, cast.member.email, PASSWORD, next_url="/t/acme/")
    assert response.status_code == 200
    assert "_auth_user_id" not in client.session
    assert "administrator of Globex" in response.content.decode()
    assert _denials().get().tenant_id == cast.globex.pk


def test_an_sso_member_elsewhere_keeps_the_password_where_they_are_owner_without_sso(cast, client):
    """Owner of Globex (no SSO) and plain member of Acme (SSO, not required): password plus MFA."""
    MembershipFactory(tenant=cast.acme, user=cast.globex_owner, role=Membership.Role.MEMBER)
    sso_connection(cast.acme)
    assert password_sign_in(client, cast.globex_owner.email, PASSWORD).status_code == 302


def test_an_open_password_session_ends_once_sso_covers_the_admin(cast, client):
    """Admins never keep using a password: the session policy re-checks within a minute."""
    assert password_sign_in(client, cast.globex_owner.email, PASSWORD).status_code == 302
    assert client.get("/accounts/2fa/").status_code == 200
    connection = sso_connection(cast.globex, name="Globex Okta")
    session = client.session
    clock = session[services.SESSION_CLOCK_KEY]
    clock["checked"] = time.time() - 120  # the cached policy is older than a minute
    session[services.SESSION_CLOCK_KEY] = clock
    session.save()

    response = client.get("/accounts/2fa/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(tenant__isnull=True, action="auth.session_expired")
    assert event.metadata["reason"] == "sso_required"
    assert not AuditEvent.objects.filter(action="auth.sign_out").exists()
    page = client.get(response["Location"]).content.decode()
    assert f"/sso/start/{connection.public_id}/" in page  # the message names the way in


def test_sso_sessions_are_not_ended_by_the_password_rule(cast, client_for):
    connection = sso_connection(cast.acme)
    client = client_for(cast.admin)
    session = client.session
    now = time.time()
    session[services.SESSION_SIGN_IN_KEY] = {"method": "saml", "idp": "Okta", "mfa": True, "at": now}
    # What the SSO flow records: the session came through this tenant's own connection, in this sign-in.
    session["bastion_sso"] = {"connection": str(connection.public_id), "tenant": cast.acme.pk, "at": now}
    session[services.SESSION_CLOCK_KEY] = {"start": time.time(), "seen": time.time(), "checked": 0.0}
    session.save()
    assert client.get("/t/acme/").status_code == 200
