"""Tenant A's IdP never opens tenant B's console, for any member of B (issue #7, item 4).

The black-box run from the issue: Globex invites ``contractor@acme.test`` as a
plain member, who signs in with a password and TOTP. acme.test is Acme's
verified domain, so Acme's IdP may assert that address. Whatever Acme's IdP
says, the session it opens must not open ``/t/globex/``: Globex never chose
to trust Acme's IdP. Globex asks for its own way in (step-up), and after the
person signs in again with it, the session is bound to that sign-in.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from apps.sso.models import ExternalIdentity
from apps.tenants.models import Membership
from tests.accounts.helpers import MFA_STAGE, enrol_totp, password_sign_in, totp_code
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory, UserFactory
from tests.sso.test_flow_support import (
    attributes,
    https_client,
    saml_connection,
    saml_sign_in,
    signed_in_user_id,
    verify_domain,
)

pytestmark = pytest.mark.django_db

CONTRACTOR = "contractor@acme.test"


@pytest.fixture
def acme_idp(cast):
    verify_domain(cast.acme, "acme.test")
    return saml_connection(cast.acme)


@pytest.fixture
def contractor(cast):
    """Globex's plain member with a password and TOTP (the invitation, accepted)."""
    user = UserFactory(email=CONTRACTOR)
    MembershipFactory(tenant=cast.globex, user=user, role=Membership.Role.MEMBER)
    return user, enrol_totp(user)


def _acme_sign_in(client, acme_idp):
    return saml_sign_in(client, acme_idp, name_id=CONTRACTOR, attributes=attributes(CONTRACTOR))


def _linked_at_acme(acme_idp, user) -> None:
    """The contractor is also Acme's person: their Acme identity is linked already (confirmed earlier)."""
    from apps.sso.services.signin import identity_link_values

    ExternalIdentity.objects.create(
        connection=acme_idp, subject=CONTRACTOR, user=user, **identity_link_values(acme_idp)
    )
    MembershipFactory(tenant=acme_idp.tenant, user=user, role=Membership.Role.MEMBER)


def test_black_box_run_acme_idp_session_does_not_open_globex(cast, acme_idp, contractor) -> None:
    client = https_client()

    _acme_sign_in(client, acme_idp)

    response = client.get("/t/globex/")
    assert response.status_code != 200
    assert response.status_code in (302, 404)


def test_acme_idp_session_is_sent_to_step_up_for_a_plain_globex_member(cast, acme_idp, contractor) -> None:
    user, _secret = contractor
    _linked_at_acme(acme_idp, user)
    client = https_client()
    assert _acme_sign_in(client, acme_idp).status_code == 302
    assert signed_in_user_id(client) == str(user.pk)
    assert client.get("/t/acme/").status_code == 200  # A's IdP opens A's console

    response = client.get("/t/globex/members/")

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/sso/step-up/"
    assert parse_qs(location.query) == {"tenant": ["globex"], "next": ["/t/globex/members/"]}
    for path in ("/t/globex/", "/t/globex/audit/", "/t/globex/settings/sso/"):
        assert client.get(path).status_code == 302, path
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert b"Sign in with your password" in page.content


def test_step_up_with_password_and_totp_rebinds_the_session(cast, acme_idp, contractor) -> None:
    user, secret = contractor
    _linked_at_acme(acme_idp, user)
    client = https_client()
    _acme_sign_in(client, acme_idp)

    ended = client.post("/sso/step-up/", {"tenant": "globex", "next": "/t/globex/", "method": "password"})

    assert ended.status_code == 302
    assert ended["Location"].startswith("/accounts/login/?")
    assert signed_in_user_id(client) is None  # the Acme sign-in is over
    assert password_sign_in(client, CONTRACTOR, PASSWORD)["Location"] == MFA_STAGE
    assert client.post(MFA_STAGE, {"code": totp_code(secret)}).status_code == 302
    assert client.get("/t/globex/").status_code == 200


def test_globex_idp_step_up_rebinds_and_then_acme_asks_again(cast, acme_idp, contractor) -> None:
    user, _ = contractor
    _linked_at_acme(acme_idp, user)
    verify_domain(cast.globex, "globex.test")
    globex_idp = saml_connection(cast.globex, idp_entity_id="https://idp.globex.test/")
    from apps.sso.services.signin import identity_link_values

    ExternalIdentity.objects.create(
        connection=globex_idp, subject=CONTRACTOR, user=user, **identity_link_values(globex_idp)
    )
    client = https_client()
    _acme_sign_in(client, acme_idp)
    assert client.get("/t/globex/").status_code == 302

    saml_sign_in(
        client, globex_idp, name_id=CONTRACTOR, attributes=attributes(CONTRACTOR), issuer="https://idp.globex.test/"
    )

    assert client.get("/t/globex/").status_code == 200
    assert client.get("/t/acme/").status_code == 302  # bound to one sign-in: Globex's now


def test_step_up_page_answers_404_to_non_members(cast, acme_idp, contractor) -> None:
    user, _ = contractor
    _linked_at_acme(acme_idp, user)
    client = https_client()
    _acme_sign_in(client, acme_idp)
    outsider_tenant = cast.acme.__class__.objects.create(slug="initech", name="Initech")

    assert client.get("/sso/step-up/", {"tenant": outsider_tenant.slug}).status_code == 404
    assert client.get("/sso/step-up/", {"tenant": "no-such"}).status_code == 404


def test_stale_sso_record_binds_nothing(cast, acme_idp, contractor) -> None:
    """A record of an earlier Acme sign-in left in the session does not count for a later one."""
    user, _ = contractor
    _linked_at_acme(acme_idp, user)
    client = https_client()
    _acme_sign_in(client, acme_idp)
    session = client.session
    session["bastion_auth"] = {**session["bastion_auth"], "at": session["bastion_auth"]["at"] + 1}
    session.save()

    assert client.get("/t/acme/").status_code == 302
