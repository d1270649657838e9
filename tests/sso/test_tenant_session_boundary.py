"""A session from tenant A's IdP (or a password) never opens tenant B's console when B demands its own SSO."""

from __future__ import annotations

import pytest

from apps.tenants.models import Membership
from tests.factories import MembershipFactory
from tests.sso.test_flow_support import https_client, saml_connection, saml_sign_in, verify_domain

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_idps(cast):
    verify_domain(cast.acme, "acme.example")
    acme_idp = saml_connection(cast.acme)
    globex_idp = saml_connection(cast.globex, idp_entity_id="https://idp.globex.example/")
    return acme_idp, globex_idp


def test_acme_idp_session_is_sent_to_globex_idp_for_globex_admin_pages(cast, two_idps) -> None:
    acme_idp, globex_idp = two_idps
    client = https_client()
    assert saml_sign_in(client, acme_idp).status_code == 302
    ada = Membership.objects.get(tenant=cast.acme, user__email="ada@acme.example").user
    MembershipFactory(tenant=cast.globex, user=ada, role=Membership.Role.ADMIN)

    assert client.get("/t/acme/").status_code == 200
    response = client.get("/t/globex/members/")
    assert response.status_code == 302
    assert response["Location"].startswith("/sso/step-up/?tenant=globex")
    step_up = client.get(response["Location"])
    assert f"/sso/start/{globex_idp.public_id}/?next=" in step_up.content.decode()


def test_plain_members_are_sent_to_step_up_too(cast, two_idps) -> None:
    """#7 item 4: not only admins or "SSO required" tenants: any member of Globex asks for Globex's own way in."""
    acme_idp, _ = two_idps
    client = https_client()
    saml_sign_in(client, acme_idp)
    ada = Membership.objects.get(tenant=cast.acme, user__email="ada@acme.example").user
    MembershipFactory(tenant=cast.globex, user=ada, role=Membership.Role.MEMBER)
    response = client.get("/t/globex/")
    assert response.status_code == 302
    assert response["Location"].startswith("/sso/step-up/?tenant=globex")


def test_password_session_of_an_admin_does_not_reach_the_console(cast, two_idps, client) -> None:
    client.force_login(cast.globex_owner)
    session = client.session
    session["bastion_auth"] = {"method": "password", "idp": "", "mfa": True, "at": 0}
    session.save()
    response = client.get("/t/globex/")
    assert response.status_code == 302
    assert response["Location"].startswith(("/sso/step-up/", "/accounts/login/"))
