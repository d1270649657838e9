"""Invitation links: new person sets a password, existing user confirms, and every way a link can be bad."""

from __future__ import annotations

import re
import time
from unittest import mock

import pytest
from allauth.account.models import EmailAddress
from django.core import mail

from apps.audit.models import AuditEvent
from apps.tenants import services
from apps.tenants.models import Membership
from tests.conftest import PASSWORD
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Plenty-long passphrase 42"
EIGHT_DAYS = 8 * 24 * 3600


@pytest.fixture
def invite(cast, client_for, django_capture_on_commit_callbacks):
    """Invite through the console as the acme admin; returns the membership and the link path from the e-mail."""
    admin = client_for(cast.admin)

    def make(email: str, role: str = "member") -> tuple[Membership, str]:
        with django_capture_on_commit_callbacks(execute=True):
            response = admin.post("/t/acme/members/invite/", {"email": email, "role": role})
        assert response.status_code == 302
        path = re.search(r"https?://[^/\s]+(/invitations/\S+/)", mail.outbox[-1].body).group(1)
        return Membership.objects.get(tenant=cast.acme, user__email=email), path

    return make


def test_new_person_end_to_end(cast, client, invite):
    membership, path = invite("fresh@example.com")
    assert "Acme Corp" in mail.outbox[-1].body
    assert "admin@acme.example has invited you" in mail.outbox[-1].body

    page = client.get(path)
    assert page.status_code == 200
    assert "Choose a password" in page.content.decode()

    weak = client.post(path, {"new_password1": "password", "new_password2": "password"})
    assert weak.status_code == 400
    assert "too common" in weak.content.decode() or "too short" in weak.content.decode()
    membership.refresh_from_db()
    assert membership.status == "invited"

    mismatch = client.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD + "x"})
    assert mismatch.status_code == 400

    done = client.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302
    assert done["Location"].startswith("/accounts/login/")
    assert "next=%2Ft%2Facme%2F" in done["Location"]
    membership.refresh_from_db()
    assert membership.status == "active"
    assert membership.joined_at is not None
    assert EmailAddress.objects.get(user=membership.user).verified
    assert "_auth_user_id" not in client.session  # not logged in by the invitation

    assert client.get(path).status_code == 400  # used links do not work twice

    signed_in = client.post("/accounts/login/?next=/t/acme/", {"login": "fresh@example.com", "password": NEW_PASSWORD})
    assert signed_in.status_code == 302
    assert signed_in["Location"] == "/t/acme/"
    # Acme requires MFA for password sign-ins (the default policy): enrolment comes first.
    assert client.get("/t/acme/")["Location"] == "/accounts/2fa/totp/activate/"

    actions = set(AuditEvent.objects.filter(actor_id=str(membership.user_id)).values_list("action", flat=True))
    assert {"auth.password_set", "member.join", "auth.sign_in"} <= actions


def test_over_long_password_is_a_form_error(cast, client, invite):
    _, path = invite("long@example.com")
    long = "Ab1-" * 100
    response = client.post(path, {"new_password1": long, "new_password2": long})
    assert response.status_code == 400
    assert "at most 128" in response.content.decode()


def test_existing_user_signs_in_then_confirms(cast, client, client_for, invite):
    known = UserFactory(email="known@example.com")
    membership, path = invite("known@example.com")
    anonymous = client.get(path)
    assert anonymous.status_code == 200
    assert "/accounts/login/?next=" in anonymous.content.decode()
    assert "Choose a password" not in anonymous.content.decode()
    assert client.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}).status_code == 200
    assert known.check_password(PASSWORD)  # the password form is never offered to an existing account

    invitee = client_for(known)
    confirm = invitee.get(path)
    assert confirm.status_code == 200
    assert "Accept the invitation" in confirm.content.decode()
    membership.refresh_from_db()
    assert membership.status == "invited"  # GET changes nothing
    accepted = invitee.post(path)
    assert accepted.status_code == 302
    assert accepted["Location"] == "/t/acme/"
    membership.refresh_from_db()
    assert membership.status == "active"


def test_signed_in_as_someone_else(cast, client_for, invite):
    membership, path = invite("someone@example.com")
    other = client_for(cast.outsider)
    response = other.get(path)
    assert response.status_code == 403
    assert "sent to another e-mail address" in response.content.decode()
    assert other.post(path).status_code == 403
    membership.refresh_from_db()
    assert membership.status == "invited"


def test_expired_link(cast, client, invite):
    eight_days_ago = time.time() - EIGHT_DAYS
    with mock.patch("django.core.signing.time.time", return_value=eight_days_ago):
        membership, path = invite("late@example.com")
    response = client.get(path)
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    response = client.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 400
    membership.refresh_from_db()
    assert membership.status == "invited"
    assert not membership.user.has_usable_password()


def test_expiry_follows_the_configured_max_age(cast, client, invite):
    _, path = invite("strict@example.com")
    with mock.patch.object(services, "INVITATION_MAX_AGE", -1):
        assert client.get(path).status_code == 400


@pytest.mark.parametrize(
    "mangle",
    [
        lambda token: token[:-2] + ("AA" if not token.endswith("AA") else "BB"),  # signature changed
        lambda token: "x" + token,  # payload changed
        lambda token: "garbage",
        lambda token: "a" * 2000,
        lambda token: token.split(":")[0],
    ],
)
def test_forged_links_are_400(cast, client, invite, mangle):
    membership, path = invite("target@example.com")
    token = path.split("/")[2]
    response = client.get(f"/invitations/{mangle(token)}/")
    assert response.status_code == 400
    assert "not valid" in response.content.decode()
    response = client.post(
        f"/invitations/{mangle(token)}/", {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD}
    )
    assert response.status_code == 400
    membership.refresh_from_db()
    assert membership.status == "invited"


def test_token_signed_with_another_salt_is_refused(cast, client):
    from django.core import signing

    membership = Membership.objects.get(tenant=cast.acme, user=cast.member)
    token = signing.dumps({"m": membership.pk, "e": cast.member.email}, compress=True)
    assert client.get(f"/invitations/{token}/").status_code == 400


def test_withdrawn_invitation(cast, client, invite):
    membership, path = invite("withdrawn@example.com")
    services.membership_remove(membership=membership, actor=cast.admin)
    response = client.get(path)
    assert response.status_code == 400
    assert "already been used or was withdrawn" in response.content.decode()


def test_invitation_to_a_suspended_tenant_waits(cast, client, invite):
    membership, path = invite("paused@example.com")
    services.tenant_set_status(tenant=cast.acme, suspended=True, reason="audit", actor=cast.staff)
    response = client.post(path, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 403
    membership.refresh_from_db()
    assert membership.status == "invited"
    assert not membership.user.has_usable_password()


def test_resent_invitation_has_a_working_link(cast, client, client_for, invite, django_capture_on_commit_callbacks):
    membership, _ = invite("again@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        client_for(cast.admin).post(f"/t/acme/members/{membership.pk}/resend/")
    assert len(mail.outbox) == 2
    path = re.search(r"(/invitations/\S+/)", mail.outbox[-1].body).group(1)
    assert client.get(path).status_code == 200
