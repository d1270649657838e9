"""Emergency accounts signing in (#11, item 8): with "SSO required", never with a password alone, always seen.

The tenant's SSO works and requires SSO for everyone, so nobody else gets in
with a password. The emergency account does, with its password *and* its TOTP
code; the sign-in is audited high on the tenant's chain (IP, user agent), every
Owner is e-mailed (a real Celery worker in one test, eager tasks elsewhere, as
the suite does), and the dashboard shows it until an Owner acknowledges it.
"""

from __future__ import annotations

import pytest
from allauth.mfa.models import Authenticator
from django.core import mail
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.sso import emergency, policy
from apps.sso.adapters import MFAAdapter
from apps.sso.models import EmergencySignIn
from apps.sso.services import emergency as services
from apps.tenants.models import Membership
from tests.accounts.helpers import LOGIN, MFA_STAGE, set_policy, sso_connection, totp_code
from tests.factories import MembershipFactory, UserFactory

UA = "EmergencyBrowser/1.0"


def _membership(tenant, user) -> Membership:
    return Membership.objects.get(tenant=tenant, user=user)


@pytest.fixture
def locked_out(cast):
    """Acme's SSO works and is required for everyone; an Owner keeps an emergency account; a second Owner."""
    sso_connection(cast.acme, name="Acme Okta")
    set_policy(cast.acme, sso_required=True)
    cast.owner2 = UserFactory(email="owner2@acme.example")
    MembershipFactory(tenant=cast.acme, user=cast.owner2, role=Membership.Role.OWNER)
    cast.credentials = services.account_create(
        tenant=cast.acme, actor=_membership(cast.acme, cast.owner), label="Safe A"
    )
    return cast


def _client() -> Client:
    return Client(HTTP_USER_AGENT=UA)


def _password(client: Client, credentials: services.Credentials, password: str | None = None):
    return client.post(LOGIN, {"login": credentials.login, "password": password or credentials.password})


def _sign_in(client: Client, credentials: services.Credentials, capture) -> None:
    with capture(execute=True):
        assert _password(client, credentials)["Location"] == MFA_STAGE
        done = client.post(MFA_STAGE, {"code": totp_code(credentials.totp_secret)})
    assert done.status_code == 302, done
    assert done["Location"] != LOGIN


def _events(tenant, **filters) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant=tenant, action="sso.emergency_sign_in", **filters).order_by("seq"))


# --- the way in --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_password_alone_is_not_enough(locked_out):
    client = _client()
    response = _password(client, locked_out.credentials)
    assert response.status_code == 302
    assert response["Location"] == MFA_STAGE
    assert "_auth_user_id" not in client.session  # not signed in: the second factor is still owed
    assert client.get("/t/acme/")["Location"].startswith(LOGIN)
    assert not EmergencySignIn.objects.exists()


@pytest.mark.django_db
def test_totp_sign_in_works_under_sso_required_audited_high_and_owners_emailed(
    locked_out, django_capture_on_commit_callbacks
):
    # Everyone else is refused a password here: the owner is told to use the IdP.
    refused = _client().post(LOGIN, {"login": "owner@acme.example", "password": "correct horse battery staple"})
    assert refused.status_code == 200
    assert "Acme Okta" in refused.content.decode()

    client = _client()
    mail.outbox.clear()
    _sign_in(client, locked_out.credentials, django_capture_on_commit_callbacks)
    # In: the dashboard and the SSO settings (owner role), without a step-up to the broken IdP.
    assert client.get("/t/acme/").status_code == 200
    assert client.get("/t/acme/settings/sso/").status_code == 200

    (event,) = _events(locked_out.acme, result="success")
    assert event.metadata["severity"] == "high"
    assert event.metadata["mfa"] == "totp"
    assert event.ip == "127.0.0.1"
    assert event.user_agent == UA
    assert event.metadata["login"] == locked_out.credentials.login
    sign_in = EmergencySignIn.objects.get(tenant=locked_out.acme)
    assert (sign_in.ip, sign_in.user_agent, sign_in.mfa_type) == ("127.0.0.1", UA, "totp")
    assert sign_in.account.last_used_at is not None

    # Every Owner, one message each; not admins, not the emergency account itself.
    recipients = sorted(m.to[0] for m in mail.outbox if "emergency account" in m.subject)
    assert recipients == ["owner2@acme.example", "owner@acme.example"]
    assert "Safe A" in mail.outbox[0].body
    assert "127.0.0.1" in mail.outbox[0].body


@pytest.mark.django_db
def test_the_exemption_is_for_that_membership_only(locked_out):
    user = User.objects.get(email=locked_out.credentials.login)
    assert policy.password_sign_in_check(user) is None
    assert policy.session_refusal(user, sign_in={"method": "password", "mfa": True}, sso=None) is None
    # Should the same user ever hold a membership elsewhere, that tenant's rules apply in full there.
    sso_connection(locked_out.globex, name="Globex IdP")
    set_policy(locked_out.globex, sso_required=True)
    MembershipFactory(tenant=locked_out.globex, user=user, role=Membership.Role.MEMBER)
    refusal = policy.password_sign_in_check(user)
    assert refusal is not None
    assert refusal.tenant == locked_out.globex
    # And a disabled emergency account is no exemption at all.
    locked_out.credentials.account.__class__.objects.filter(pk=locked_out.credentials.account.pk).update(
        disabled_at="2026-01-01T00:00:00Z"
    )
    Membership.objects.filter(tenant=locked_out.globex, user=user).delete()
    refusal = policy.password_sign_in_check(user)
    assert refusal is not None
    assert refusal.tenant == locked_out.acme


@pytest.mark.django_db
def test_an_emergency_session_cannot_enter_another_tenant(locked_out, django_capture_on_commit_callbacks):
    user = User.objects.get(email=locked_out.credentials.login)
    MembershipFactory(tenant=locked_out.globex, user=user, role=Membership.Role.OWNER)  # however it got there
    client = _client()
    _sign_in(client, locked_out.credentials, django_capture_on_commit_callbacks)
    assert client.get("/t/acme/").status_code == 200
    for url in ("/t/globex/", "/t/globex/members/", "/t/globex/settings/sso/", "/t/globex/sso/emergency/"):
        assert client.get(url).status_code == 404, url
    assert client.post("/t/globex/members/invite/", {"email": "x@y.example", "role": "owner"}).status_code == 404
    assert client.get("/platform/").status_code == 404


@pytest.mark.django_db
def test_wrong_password_and_wrong_code_are_audited_high(locked_out):
    client = _client()
    assert _password(client, locked_out.credentials, password="not-the-password-at-all").status_code == 200
    assert _password(client, locked_out.credentials)["Location"] == MFA_STAGE
    wrong = "000000" if totp_code(locked_out.credentials.totp_secret) != "000000" else "111111"
    assert client.post(MFA_STAGE, {"code": wrong}).status_code == 200
    reasons = [(e.result, e.metadata["reason"], e.metadata["severity"]) for e in _events(locked_out.acme)]
    assert reasons == [("failure", "bad_password", "high"), ("failure", "mfa_failed", "high")]
    assert all(e.user_agent == UA and e.ip == "127.0.0.1" for e in _events(locked_out.acme))
    assert not EmergencySignIn.objects.exists()


@pytest.mark.django_db
def test_a_recovery_code_does_not_open_the_console(locked_out, django_capture_on_commit_callbacks):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    user = User.objects.get(email=locked_out.credentials.login)
    code = RecoveryCodes.activate(user).get_unused_codes()[0]
    client = _client()
    with django_capture_on_commit_callbacks(execute=True):
        assert _password(client, locked_out.credentials)["Location"] == MFA_STAGE
        client.post(MFA_STAGE, {"code": code})
    assert "_auth_user_id" not in client.session
    assert client.get("/t/acme/")["Location"].startswith(LOGIN)
    (event,) = _events(locked_out.acme, result="denied")
    assert event.metadata["reason"] == "recovery_code"
    assert not EmergencySignIn.objects.exists()


@pytest.mark.django_db
def test_an_account_without_a_second_factor_is_refused_after_its_password(locked_out):
    Authenticator.objects.filter(user__email=locked_out.credentials.login).delete()
    client = _client()
    response = _password(client, locked_out.credentials)
    assert response.status_code == 200
    assert "no second factor" in response.content.decode()
    assert "_auth_user_id" not in client.session
    (event,) = _events(locked_out.acme, result="denied")
    assert event.metadata["reason"] == "no_second_factor"


@pytest.mark.django_db
def test_a_disabled_account_cannot_sign_in(locked_out):
    services.account_set_disabled(
        account=locked_out.credentials.account, actor=_membership(locked_out.acme, locked_out.owner), disabled=True
    )
    client = _client()
    assert _password(client, locked_out.credentials).status_code == 200
    assert "_auth_user_id" not in client.session
    (event,) = _events(locked_out.acme, result="failure")
    assert event.metadata["reason"] == "disabled"


@pytest.mark.django_db
def test_no_password_reset_mail_for_an_emergency_account(locked_out):
    mail.outbox.clear()
    _client().post("/accounts/password/reset/", {"email": locked_out.credentials.login})
    assert mail.outbox == []
    assert _events(locked_out.acme, result="failure")[0].metadata["reason"] == "password_reset_refused"


@pytest.mark.django_db
def test_an_emergency_account_cannot_remove_its_totp(locked_out):
    totp = Authenticator.objects.get(user__email=locked_out.credentials.login, type="totp")
    assert MFAAdapter().can_delete_authenticator(totp) is False
    own = Authenticator.objects.create(user=locked_out.owner, type="totp", data={"secret": "x"})
    assert MFAAdapter().can_delete_authenticator(own) is True


# --- the dashboard card ------------------------------------------------------------------------


@pytest.mark.django_db
def test_dashboard_card_until_an_owner_acknowledges(locked_out, django_capture_on_commit_callbacks):
    _sign_in(_client(), locked_out.credentials, django_capture_on_commit_callbacks)
    sign_in = EmergencySignIn.objects.get()
    owner, admin, member = Client(), Client(), Client()
    owner.force_login(locked_out.owner)
    admin.force_login(locked_out.admin)
    member.force_login(locked_out.member)
    owner_page = owner.get("/t/acme/").content.decode()
    assert 'id="emergency-sign-ins-card"' in owner_page
    assert "Safe A" in owner_page
    assert f"/sign-ins/{sign_in.pk}/acknowledge/" in owner_page
    admin_page = admin.get("/t/acme/").content.decode()
    assert 'id="emergency-sign-ins-card"' in admin_page
    assert "/acknowledge/" not in admin_page
    assert 'id="emergency-sign-ins-card"' not in member.get("/t/acme/").content.decode()
    # The admin cannot acknowledge it; the owner can, once.
    assert admin.post(f"/t/acme/sso/emergency/sign-ins/{sign_in.pk}/acknowledge/").status_code == 403
    done = owner.post(f"/t/acme/sso/emergency/sign-ins/{sign_in.pk}/acknowledge/", {"next": "/t/acme/"})
    assert done.status_code == 302
    assert done["Location"] == "/t/acme/"
    assert 'id="emergency-sign-ins-card"' not in owner.get("/t/acme/").content.decode()
    again = owner.post(f"/t/acme/sso/emergency/sign-ins/{sign_in.pk}/acknowledge/", {"next": "https://evil.example/"})
    assert again["Location"] == "/t/acme/sso/emergency/"  # off-site next ignored
    (event,) = AuditEvent.objects.filter(action="sso.emergency_sign_in_acknowledge", tenant=locked_out.acme)
    assert event.actor_id == str(locked_out.owner.pk)


# --- a real worker delivers the Owners' e-mail ---------------------------------------------------


@pytest.mark.celery
def test_owners_are_emailed_by_the_real_worker(cast, celery_worker, wait_for):
    sso_connection(cast.acme, name="Acme Okta")
    set_policy(cast.acme, sso_required=True)
    credentials = services.account_create(tenant=cast.acme, actor=_membership(cast.acme, cast.owner), label="Safe W")
    mail.outbox.clear()
    client = _client()
    assert _password(client, credentials)["Location"] == MFA_STAGE
    assert client.post(MFA_STAGE, {"code": totp_code(credentials.totp_secret)}).status_code == 302
    wait_for(lambda: [m for m in mail.outbox if "Safe W" in m.subject], message="no e-mail from the worker")
    assert [m.to for m in mail.outbox if "Safe W" in m.subject] == [["owner@acme.example"]]
    assert emergency.owner_addresses(tenant=cast.acme) == ["owner@acme.example"]


@pytest.mark.django_db
def test_an_emergency_account_cannot_change_its_password_or_add_an_address(locked_out):
    from allauth.account.models import EmailAddress

    user = User.objects.get(email=locked_out.credentials.login)
    client = Client()
    client.force_login(user)
    response = client.post(
        "/accounts/password/change/",
        {
            "oldpassword": locked_out.credentials.password,
            "password1": "a brand new passphrase 42",
            "password2": "a brand new passphrase 42",
        },
    )
    assert response.status_code == 200
    assert "belong to its Owners" in response.content.decode()
    user.refresh_from_db()
    assert user.check_password(locked_out.credentials.password)
    response = client.post("/accounts/email/", {"action_add": "", "email": "attacker@evil.example"})
    assert "belong to its Owners" in response.content.decode()
    assert list(EmailAddress.objects.filter(user=user).values_list("email", flat=True)) == [user.email]
    # An ordinary member still changes their own password.
    other = Client()
    other.force_login(locked_out.member)
    changed = other.post(
        "/accounts/password/change/",
        {
            "oldpassword": "correct horse battery staple",
            "password1": "a brand new passphrase 42",
            "password2": "a brand new passphrase 42",
        },
    )
    assert changed.status_code == 302


@pytest.mark.django_db
def test_a_failed_attempt_is_not_recorded_as_the_account_acting(locked_out):
    _password(_client(), locked_out.credentials, password="wrong-wrong-wrong")
    (event,) = _events(locked_out.acme, result="failure")
    assert event.actor_type == "anonymous"
    assert event.actor_display == locked_out.credentials.login
    assert event.target_id == str(locked_out.credentials.account.pk)
