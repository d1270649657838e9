"""Session lifetimes per tenant policy, revocation everywhere, key rotation and the session list."""

from __future__ import annotations

import time
from importlib import import_module

import pytest
from allauth.usersessions.models import UserSession
from django.conf import settings
from django.test import Client

from apps.accounts import services
from apps.audit.models import AuditEvent
from tests.accounts.helpers import set_policy

pytestmark = pytest.mark.django_db

MINUTE = 60


def _shift_clock(client: Client, *, start: float | None = None, seen: float | None = None) -> None:
    """Move the session's sign-in time and last activity into the past (as if time had passed)."""
    session = client.session
    clock = session[services.SESSION_CLOCK_KEY]
    if start is not None:
        clock["start"] = start
    if seen is not None:
        clock["seen"] = seen
    session[services.SESSION_CLOCK_KEY] = clock
    session.save()


def _signed_in(cast, client_for, who: str = "member") -> Client:
    client = client_for(getattr(cast, who))
    assert client.get("/t/acme/").status_code == 200  # the clock runs and the session is listed
    return client


def test_idle_sessions_end_with_a_message_and_an_audit_event(cast, client_for):
    client = _signed_in(cast, client_for)
    _shift_clock(client, seen=time.time() - 31 * MINUTE)
    response = client.get("/t/acme/members/?page=2")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Ft%2Facme%2Fmembers%2F%3Fpage%3D2"
    assert "_auth_user_id" not in client.session
    event = AuditEvent.objects.get(tenant__isnull=True, action="auth.session_expired")
    assert (event.actor_id, event.metadata) == (str(cast.member.pk), {"reason": "idle", "idle_minutes": 30})
    assert not AuditEvent.objects.filter(action="auth.sign_out").exists()
    page = client.get(response["Location"]).content.decode()
    assert "Your session ended after 30 minutes without activity" in page
    assert not UserSession.objects.filter(user=cast.member).exists()


def test_absolute_lifetime_ends_even_a_busy_session(cast, client_for):
    client = _signed_in(cast, client_for)
    _shift_clock(client, start=time.time() - (8 * 60 + 1) * MINUTE, seen=time.time() - 5)
    response = client.get("/t/acme/")
    assert response["Location"].startswith("/accounts/login/")
    event = AuditEvent.objects.get(tenant__isnull=True, action="auth.session_expired")
    assert event.metadata == {"reason": "absolute", "absolute_minutes": 480}
    assert "sessions last at most 8 hours" in client.get(response["Location"]).content.decode()


def test_the_strictest_tenant_policy_applies(cast, client_for):
    set_policy(cast.acme, session_idle_minutes=5, session_absolute_minutes=60)
    client = _signed_in(cast, client_for)
    _shift_clock(client, seen=time.time() - 6 * MINUTE)
    assert client.get("/t/acme/")["Location"].startswith("/accounts/login/")
    assert AuditEvent.objects.get(tenant__isnull=True, action="auth.session_expired").metadata["idle_minutes"] == 5


def test_activity_within_the_limits_keeps_the_session(cast, client_for):
    client = _signed_in(cast, client_for)
    _shift_clock(client, start=time.time() - 7 * 60 * MINUTE, seen=time.time() - 29 * MINUTE)
    assert client.get("/t/acme/").status_code == 200
    assert client.session[services.SESSION_CLOCK_KEY]["seen"] > time.time() - 5  # activity recorded
    assert not AuditEvent.objects.filter(action="auth.session_expired").exists()


def test_htmx_requests_of_an_expired_session_get_hx_redirect(cast, client_for):
    client = _signed_in(cast, client_for)
    _shift_clock(client, seen=time.time() - 31 * MINUTE)
    response = client.get("/t/acme/members/", HTTP_HX_REQUEST="true")
    assert response.status_code == 204
    assert response["HX-Redirect"] == "/accounts/login/"


def test_steady_requests_do_not_write_the_session_each_time(cast, client_for):
    """Within a minute the policy is not re-read and the session row is not rewritten."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = _signed_in(cast, client_for)
    client.get("/accounts/email/")
    with CaptureQueriesContext(connection) as captured:
        assert client.get("/accounts/email/").status_code == 200
    sql = [q["sql"] for q in captured.captured_queries]
    assert not [q for q in sql if q.startswith("UPDATE") and '"django_session"' in q]
    assert not [q for q in sql if '"sso_signinpolicy"' in q]


# --- sign out everywhere --------------------------------------------------------------------


def _password_client(user) -> Client:
    client = Client()
    client.force_login(user)
    assert client.get("/accounts/email/").status_code == 200
    return client


def test_sign_out_everywhere_ends_every_session(cast):
    first, second = _password_client(cast.member), _password_client(cast.member)
    other_user = _password_client(cast.viewer)
    assert UserSession.objects.filter(user=cast.member).count() == 2

    ended = services.sign_out_everywhere(cast.member, reason="deprovisioned")
    assert ended == 2
    assert not UserSession.objects.filter(user=cast.member).exists()
    for client in (first, second):
        response = client.get("/accounts/email/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")
    assert other_user.get("/accounts/email/").status_code == 200
    event = AuditEvent.objects.get(tenant__isnull=True, action="auth.sign_out_everywhere")
    assert event.metadata == {"sessions_ended": 2, "reason": "deprovisioned"}


def test_sign_out_everywhere_also_ends_sessions_nobody_listed(cast):
    """A session that never made a request (so no session-list row) is ended by the revocation stamp."""
    engine = import_module(settings.SESSION_ENGINE)
    client = Client()
    client.force_login(cast.member)
    UserSession.objects.filter(user=cast.member).delete()  # as if never tracked
    assert engine.SessionStore().exists(client.session.session_key)
    services.sign_out_everywhere(cast.member)
    response = client.get("/accounts/email/")
    assert response["Location"].startswith("/accounts/login/")
    assert AuditEvent.objects.get(tenant__isnull=True, action="auth.session_expired").metadata == {"reason": "revoked"}
    fresh = Client()
    fresh.force_login(cast.member)  # signing in again afterwards works
    assert fresh.get("/accounts/email/").status_code == 200


def test_sign_out_everywhere_for_a_user_without_sessions(cast):
    assert services.sign_out_everywhere(cast.outsider) == 0


# --- rotation ----------------------------------------------------------------------------


def test_rotate_session_changes_the_key_and_keeps_the_user(cast, client_for, rf):
    from django.contrib.auth.middleware import AuthenticationMiddleware
    from django.contrib.sessions.middleware import SessionMiddleware

    client = _signed_in(cast, client_for)
    old_key = client.session.session_key
    request = rf.get("/", REMOTE_ADDR="10.0.0.1")
    request.COOKIES[settings.SESSION_COOKIE_NAME] = old_key
    SessionMiddleware(lambda r: None).process_request(request)
    AuthenticationMiddleware(lambda r: None).process_request(request)
    services.rotate_session(request)
    request.session.save()
    new_key = request.session.session_key
    assert new_key != old_key
    engine = import_module(settings.SESSION_ENGINE)
    assert not engine.SessionStore().exists(old_key)
    assert engine.SessionStore(new_key).get("_auth_user_id") == str(cast.member.pk)
    assert list(UserSession.objects.filter(user=cast.member).values_list("session_key", flat=True)) == [new_key]


# --- the session list --------------------------------------------------------------------


def test_session_list_is_styled_and_offers_a_sign_out_per_session(cast, settings):
    current, other = _password_client(cast.member), _password_client(cast.member)
    body = current.get("/accounts/sessions/").content.decode()
    assert 'class="auth-page auth-manage"' in body
    assert 'class="table-wrap"' in body
    assert "This&nbsp;session" in body
    other_id = UserSession.objects.get(session_key=other.session.session_key).pk
    assert f'action="/accounts/sessions/{other_id}/end/"' in body
    assert "Sign out all other sessions" in body


def test_ending_another_session_from_the_list(cast, settings):
    current, other = _password_client(cast.member), _password_client(cast.member)
    other_id = UserSession.objects.get(session_key=other.session.session_key).pk
    response = current.post(f"/accounts/sessions/{other_id}/end/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/sessions/"
    assert other.get("/accounts/email/")["Location"].startswith("/accounts/login/")
    assert current.get("/accounts/email/").status_code == 200
    event = AuditEvent.objects.get(tenant__isnull=True, action="auth.session_end")
    assert (event.actor_id, event.metadata["current"]) == (str(cast.member.pk), False)


def test_ending_the_current_session_signs_out(cast, settings):
    client = _password_client(cast.member)
    mine = UserSession.objects.get(session_key=client.session.session_key).pk
    response = client.post(f"/accounts/sessions/{mine}/end/")
    assert response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session


def test_nobody_ends_another_users_session(cast, settings):
    victim, attacker = _password_client(cast.viewer), _password_client(cast.member)
    victim_id = UserSession.objects.get(session_key=victim.session.session_key).pk
    assert attacker.post(f"/accounts/sessions/{victim_id}/end/").status_code == 404
    assert attacker.get(f"/accounts/sessions/{victim_id}/end/").status_code == 405
    assert victim.get("/accounts/email/").status_code == 200
    assert not AuditEvent.objects.filter(action="auth.session_end").exists()


def test_ending_a_session_needs_a_sign_in(cast, client, settings):
    response = client.post("/accounts/sessions/1/end/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_short_idle_limits_record_activity_often_enough(cast, client_for):
    """With a one-minute idle limit, a request 50 s after the last one keeps the session alive."""
    set_policy(cast.acme, session_idle_minutes=1, session_absolute_minutes=60)
    client = _signed_in(cast, client_for)
    now = time.time()
    _shift_clock(client, seen=now - 50)
    assert client.get("/t/acme/").status_code == 200
    assert client.session[services.SESSION_CLOCK_KEY]["seen"] > now - 5
