"""Invitations that could never be used: the invite form warns and asks to confirm (#9, item 5).

From the inviting admin's side: an address outside the tenant's verified
domains, in a role that may only sign in through SSO, would make a member who
can never get in. The form says so, says what they need, and invites only
when the admin confirms.
"""

from __future__ import annotations

import pytest

from apps.sso.models import SignInPolicy, SSOConnection
from apps.sso.policy import invite_sign_in_warning
from apps.tenants.models import Membership
from tests.sso.test_flow_support import https_client, saml_connection, verify_domain

pytestmark = pytest.mark.django_db

INVITE = "/t/acme/members/invite/"


@pytest.fixture
def acme_sso(cast):
    verify_domain(cast.acme, "acme.example")
    return saml_connection(cast.acme)


def _invited(email: str) -> bool:
    return Membership.objects.filter(user__email=email, status=Membership.Status.INVITED).exists()


def test_admin_outside_verified_domains_is_warned_and_not_invited(cast, acme_sso) -> None:
    owner = https_client(cast.owner)

    response = owner.post(INVITE, {"email": "ceo@gmail.com", "role": "admin"})

    assert response.status_code == 400
    page = response.content.decode()
    assert "could not sign in" in page
    assert f"account at {acme_sso.name}" in page
    assert "acme.example" in page
    assert 'name="invite_anyway"' in page
    assert not _invited("ceo@gmail.com")


def test_admin_outside_verified_domains_invited_after_confirming(cast, acme_sso) -> None:
    response = https_client(cast.owner).post(INVITE, {"email": "ceo@gmail.com", "role": "admin", "invite_anyway": "on"})

    assert response.status_code == 302
    assert _invited("ceo@gmail.com")


def test_sub_domain_of_a_verified_domain_is_not_enough(cast, acme_sso) -> None:
    warning = invite_sign_in_warning(tenant=cast.acme, email="ops@eu.acme.example", role="owner")
    assert warning is not None
    assert warning.rule == "admin"
    assert invite_sign_in_warning(tenant=cast.acme, email="ops@ACME.example", role="owner") is None


def test_another_tenants_verified_domain_does_not_count(cast, acme_sso) -> None:
    verify_domain(cast.globex, "globex.example")
    assert invite_sign_in_warning(tenant=cast.acme, email="spy@globex.example", role="admin") is not None


def test_member_warned_only_when_sso_is_required_for_everyone(cast, acme_sso) -> None:
    owner = https_client(cast.owner)
    assert owner.post(INVITE, {"email": "temp@gmail.com", "role": "member"}).status_code == 302

    SignInPolicy.objects.update_or_create(tenant=cast.acme, defaults={"sso_required": True})
    response = owner.post(INVITE, {"email": "other@gmail.com", "role": "viewer"})

    assert response.status_code == 400
    assert "requires single sign-on for every member" in response.content.decode()
    assert not _invited("other@gmail.com")


def test_no_warning_inside_the_domain_or_without_working_sso(cast, acme_sso) -> None:
    owner = https_client(cast.owner)
    assert owner.post(INVITE, {"email": "new.admin@acme.example", "role": "admin"}).status_code == 302

    SSOConnection.objects.filter(pk=acme_sso.pk).update(status=SSOConnection.Status.DISABLED)
    assert invite_sign_in_warning(tenant=cast.acme, email="ceo@gmail.com", role="admin") is None
