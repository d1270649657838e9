"""A policy change that would refuse an open session ends it at once, audited (#9, item 6).

The attacker's side: an admin whose IdP session never proved MFA keeps working
after the tenant turns on "IdP MFA required for admins", or a member keeps a
password session after "SSO required" — until the session expires on its own.
"""

from __future__ import annotations

import contextlib
import time

from allauth.usersessions.models import UserSession
from django.contrib.sessions.models import Session
from django.test import Client

from apps.accounts import services as account_services
from apps.audit.models import AuditEvent
from apps.sso import policy as sso_policy
from apps.sso import services
from apps.sso.models import SSOConnection
from apps.sso.policy import SESSION_SSO_KEY, policy_update
from tests.sso.test_flow_support import saml_connection


def tracked_session(user, *, method: str, tenant_id: int | None = None, mfa: bool = False) -> Client:
    """A client signed in as ``user`` the way our sign-in paths leave a session, listed in usersessions."""
    client = Client()
    client.force_login(user)
    now = time.time()
    session = client.session
    session[account_services.SESSION_SIGN_IN_KEY] = {"method": method, "idp": "", "mfa": mfa, "at": now}
    session[account_services.SESSION_CLOCK_KEY] = {
        "start": now,
        "seen": now,
        "checked": now,
        "absolute": 480,
        "idle": 30,
    }
    if method != "password":
        session[SESSION_SSO_KEY] = {"connection": "x", "tenant": tenant_id, "at": now}
    session.save()
    UserSession.objects.create(user=user, session_key=session.session_key, ip="127.0.0.1", user_agent="test")
    return client


def alive(client: Client) -> bool:
    key = client.cookies["sessionid"].value
    return Session.objects.filter(session_key=key).exists() and UserSession.objects.filter(session_key=key).exists()


def expired_events(tenant) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action="auth.session_expired").for_tenant(tenant).order_by("seq"))


def test_turning_on_idp_mfa_ends_admin_sso_sessions_without_mfa(cast) -> None:
    saml_connection(cast.acme)
    admin_no_mfa = tracked_session(cast.admin, method="saml", tenant_id=cast.acme.pk, mfa=False)
    owner_with_mfa = tracked_session(cast.owner, method="saml", tenant_id=cast.acme.pk, mfa=True)
    member_no_mfa = tracked_session(cast.member, method="saml", tenant_id=cast.acme.pk, mfa=False)

    policy_update(tenant=cast.acme, actor=cast.owner, mfa_required_admin_sso=True)

    assert not alive(admin_no_mfa)
    assert alive(owner_with_mfa)
    assert alive(member_no_mfa)  # the rule is for admins
    (event,) = expired_events(cast.acme)
    assert event.target_id == str(cast.admin.pk)
    assert event.metadata["reason"] == "idp_mfa_required"
    assert event.metadata["cause"] == "sso.policy_update"
    assert event.actor_id == str(cast.owner.pk)


def test_turning_on_sso_required_ends_member_password_sessions(cast) -> None:
    saml_connection(cast.acme)
    member = tracked_session(cast.member, method="password", mfa=True)
    member_sso = tracked_session(cast.member, method="saml", tenant_id=cast.acme.pk)
    globex = tracked_session(cast.globex_owner, method="password", mfa=True)  # another tenant: untouched

    policy_update(tenant=cast.acme, actor=cast.admin, sso_required=True)

    assert not alive(member)
    assert alive(member_sso)
    assert alive(globex)
    assert [e.metadata["reason"] for e in expired_events(cast.acme)] == ["sso_required"]


def test_enabling_sso_ends_admin_password_sessions_at_once(cast) -> None:
    connection = saml_connection(cast.acme, status=SSOConnection.Status.TESTED)
    SSOConnection.objects.filter(pk=connection.pk).update(self_tested={str(cast.admin.pk): connection.trust_epoch})
    owner_password = tracked_session(cast.owner, method="password", mfa=True)
    member_password = tracked_session(cast.member, method="password", mfa=True)

    services.connection_set_status(connection=connection, enabled=True, actor=cast.admin, lockout_acknowledged=True)

    assert not alive(owner_password)
    assert alive(member_password)  # members keep passwords unless the policy requires SSO
    (event,) = expired_events(cast.acme)
    assert event.metadata["cause"] == "sso.connection_enable"


def test_a_rolled_back_change_ends_nothing(cast) -> None:
    saml_connection(cast.acme)
    admin = tracked_session(cast.admin, method="saml", tenant_id=cast.acme.pk, mfa=False)

    with contextlib.suppress(sso_policy.PolicyError):
        policy_update(tenant=cast.acme, actor=cast.owner, mfa_required_admin_sso=True, session_idle_minutes=0)

    assert alive(admin)
    assert expired_events(cast.acme) == []


def test_middleware_applies_the_same_rule_to_an_untracked_session(cast) -> None:
    """A session the list never saw is judged by the same function on its next policy re-check."""
    saml_connection(cast.acme)
    client = tracked_session(cast.admin, method="saml", tenant_id=cast.acme.pk, mfa=False)
    UserSession.objects.all().delete()  # untracked: the sweep cannot see it
    policy_update(tenant=cast.acme, actor=cast.owner, mfa_required_admin_sso=True)
    session = client.session
    session[account_services.SESSION_CLOCK_KEY] = {**session[account_services.SESSION_CLOCK_KEY], "checked": 0.0}
    session.save()

    response = client.get("/t/acme/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]
    assert [e.metadata["reason"] for e in expired_events(cast.acme)] == ["idp_mfa_required"]


def test_session_refusal_is_the_one_rule(cast) -> None:
    saml_connection(cast.acme)
    policy_update(tenant=cast.acme, mfa_required_admin_sso=True)
    sso = {"tenant": cast.acme.pk}

    assert sso_policy.session_refusal(cast.admin, sign_in={"method": "saml", "mfa": False}, sso=sso).reason == (
        "idp_mfa_required"
    )
    assert sso_policy.session_refusal(cast.admin, sign_in={"method": "saml", "mfa": True}, sso=sso) is None
    assert sso_policy.session_refusal(cast.admin, sign_in={"method": "password"}, sso=None).reason == "sso_required"
    assert sso_policy.session_refusal(cast.admin, sign_in={"method": "password"}, sso=None, pending_link=True) is None
    assert sso_policy.session_refusal(cast.admin, sign_in=None, sso=None) is None
