"""SAML sign-in end to end through the views: start → IdP (signed response) → ACS → signed in.

Real signed XML from ``saml_helpers``; the test client plays the browser on
https://bastion.example.com.
"""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.sso.models import ExternalIdentity, SignInPolicy, SSOConnection
from apps.tenants.models import Membership, Tenant
from tests.factories import MembershipFactory, UserFactory
from tests.sso import saml_helpers as h
from tests.sso.test_flow_support import (
    acs_path,
    attributes,
    events,
    https_client,
    post_acs,
    saml_connection,
    saml_sign_in,
    signed_in_user_id,
    signed_saml_response,
    start_saml,
    verify_domain,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def acme_sso(cast):
    """Acme's enabled Okta connection and its verified domain acme.example."""
    verify_domain(cast.acme, "acme.example")
    return saml_connection(cast.acme)


def test_sp_initiated_sign_in_provisions_member_with_groups_and_audits(cast, acme_sso) -> None:
    client = https_client()

    response = saml_sign_in(client, acme_sso, next_url="/t/acme/")

    assert response.status_code == 302
    assert response["Location"] == "/t/acme/"
    user = User.objects.get(email="ada@acme.example")
    assert signed_in_user_id(client) == str(user.pk)
    assert user.full_name == "Ada Lovelace"
    assert not user.has_usable_password()
    membership = Membership.objects.get(tenant=cast.acme, user=user)
    assert (membership.status, membership.role) == ("active", "member")
    assert membership.idp_groups == ["engineering", "admins"]
    assert ExternalIdentity.objects.filter(connection=acme_sso, subject="ada@acme.example", user=user).exists()
    assert client.session["bastion_auth"]["method"] == "saml"
    (event,) = events("auth.sign_in", tenant=cast.acme)
    assert event.result == "success"
    assert event.metadata["method"] == "saml"
    assert event.metadata["idp"] == "Okta"
    assert event.metadata["mfa_asserted"] is False
    assert event.metadata["user_created"] is True
    assert events("member.join", tenant=cast.acme)
    # the dashboard opens for the new member
    assert client.get("/t/acme/").status_code == 200


def test_default_landing_is_the_tenant_dashboard(cast, acme_sso) -> None:
    response = saml_sign_in(https_client(), acme_sso)

    assert response["Location"] == "/t/acme/"


def test_second_sign_in_uses_the_linked_identity_and_replaces_groups(cast, acme_sso) -> None:
    saml_sign_in(https_client(), acme_sso)
    membership = Membership.objects.get(tenant=cast.acme, user__email="ada@acme.example")
    version = Tenant.objects.get(pk=cast.acme.pk).access_version

    response = saml_sign_in(
        https_client(), acme_sso, attributes=attributes("ada@acme.example", groups=("engineering",))
    )

    assert response.status_code == 302
    membership.refresh_from_db()
    assert membership.idp_groups == ["engineering"]  # "admins" removed at the IdP: its bound roles go with it
    assert ExternalIdentity.objects.filter(connection=acme_sso).count() == 1
    assert User.objects.filter(email="ada@acme.example").count() == 1
    assert Tenant.objects.get(pk=cast.acme.pk).access_version == version + 1  # bumped with the sign-in
    sync = events("member.idp_groups_sync", tenant=cast.acme)[-1]
    assert sync.metadata["before"] == ["engineering", "admins"]
    assert sync.metadata["after"] == ["engineering"]


def test_existing_user_of_the_verified_domain_is_linked(cast, acme_sso) -> None:
    cast.member.set_unusable_password()  # SSO-only: linking an account with a password needs its confirmation
    cast.member.save()
    client = https_client()

    saml_sign_in(
        client, acme_sso, name_id="member@acme.example", attributes=attributes("member@acme.example", groups=())
    )

    assert signed_in_user_id(client) == str(cast.member.pk)
    assert ExternalIdentity.objects.get(connection=acme_sso).user == cast.member
    assert Membership.objects.get(tenant=cast.acme, user=cast.member).role == "member"  # unchanged


def test_invited_membership_is_activated(cast, acme_sso) -> None:
    invited = UserFactory(email="ada@acme.example", password=None)  # invited, no password set yet
    MembershipFactory(tenant=cast.acme, user=invited, status="invited", joined_at=None, role="analyst")

    saml_sign_in(https_client(), acme_sso)

    membership = Membership.objects.get(tenant=cast.acme, user=invited)
    assert (membership.status, membership.role) == ("active", "analyst")
    assert membership.joined_at is not None


def test_disabled_membership_is_refused(cast, acme_sso) -> None:
    Membership.objects.filter(tenant=cast.acme, user=cast.member).update(status="disabled")
    cast.member.set_unusable_password()  # SSO-only: linking an account with a password needs its confirmation
    cast.member.save()
    client = https_client()

    response = saml_sign_in(
        client, acme_sso, name_id="member@acme.example", attributes=attributes("member@acme.example")
    )

    assert response.status_code == 403
    assert b"has been disabled by an administrator" in response.content
    assert signed_in_user_id(client) is None
    assert Membership.objects.get(tenant=cast.acme, user=cast.member).idp_groups == []
    (event,) = events("auth.sign_in", tenant=cast.acme)
    assert (event.result, event.metadata["code"]) == ("denied", "membership_disabled")


def test_unverified_domain_is_refused(cast) -> None:
    verify_domain(cast.acme, "acme.example", verified=False)
    connection = saml_connection(cast.acme)
    client = https_client()

    response = saml_sign_in(client, connection)

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert not User.objects.filter(email="ada@acme.example").exists()
    (event,) = events("auth.sign_in", tenant=cast.acme)
    assert event.metadata["code"] == "domain"


def test_admin_without_idp_mfa_is_refused_when_policy_requires_it(cast, acme_sso) -> None:
    SignInPolicy.objects.create(tenant=cast.acme, mfa_required_admin_sso=True)
    cast.admin.set_unusable_password()  # SSO-only: linking an account with a password needs its confirmation
    cast.admin.save()
    client = https_client()
    admin_attrs = attributes("admin@acme.example")

    refused = saml_sign_in(client, acme_sso, name_id="admin@acme.example", attributes=admin_attrs)

    assert refused.status_code == 403
    assert b"multi-factor" in refused.content
    assert signed_in_user_id(client) is None
    assert events("auth.sign_in", tenant=cast.acme)[-1].metadata["code"] == "mfa_required"

    accepted = saml_sign_in(
        client, acme_sso, name_id="admin@acme.example", attributes=admin_attrs, authn_context=h.AC_MFA
    )

    assert accepted.status_code == 302
    assert signed_in_user_id(client) == str(cast.admin.pk)
    assert client.session["bastion_auth"]["mfa"] is True


def test_members_are_not_held_to_the_admin_mfa_rule(cast, acme_sso) -> None:
    SignInPolicy.objects.create(tenant=cast.acme, mfa_required_admin_sso=True)

    response = saml_sign_in(https_client(), acme_sso)

    assert response.status_code == 302


def test_disabled_connection_cannot_sign_in(cast) -> None:
    verify_domain(cast.acme, "acme.example")
    connection = saml_connection(cast.acme, status=SSOConnection.Status.DISABLED)

    response = https_client().get(f"/sso/start/{connection.public_id}/")

    assert response.status_code == 404


def test_off_site_next_is_refused_before_the_idp(cast, acme_sso) -> None:
    client = https_client()
    for target in ("https://evil.example/", "//evil.example/path", "/\\evil.example", "javascript:alert(1)"):
        response = client.get(f"/sso/start/{acme_sso.public_id}/", {"next": target})

        assert response.status_code == 400, target
        assert b"not on this site" in response.content
    assert not client.session.get("sso_flows")


def test_relay_state_cannot_redirect_off_site(cast, acme_sso) -> None:
    """An IdP-initiated response may carry any RelayState: it is never used as a URL."""
    acme_sso.config = {**acme_sso.config, "allow_idp_initiated": True}
    acme_sso.save()
    client = https_client()

    response = post_acs(
        client,
        acme_sso,
        signed_saml_response(acme_sso, None),
        "https://evil.example/",
        bastion_resubmit="1",
    )

    assert response.status_code == 302
    assert response["Location"] == "/t/acme/"


def test_acs_without_the_session_cookie_posts_again_from_our_origin(cast, acme_sso) -> None:
    browser = https_client()
    key, request_id = start_saml(browser, acme_sso)
    saml_response = signed_saml_response(acme_sso, request_id)
    cookieless = https_client()  # SameSite=Lax: the IdP's cross-site POST carries no session cookie

    page = post_acs(cookieless, acme_sso, saml_response, key)

    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="bastion_resubmit" value="1"' in html
    assert f'value="{key}"' in html
    assert signed_in_user_id(cookieless) is None
    # The browser (with its cookie) posts the same fields again.
    response = post_acs(browser, acme_sso, saml_response, key, bastion_resubmit="1")
    assert response.status_code == 302
    assert signed_in_user_id(browser) is not None


def test_unsolicited_response_is_refused_unless_allowed(cast, acme_sso) -> None:
    client = https_client()

    response = post_acs(client, acme_sso, signed_saml_response(acme_sso, None), bastion_resubmit="1")

    assert response.status_code == 400
    assert signed_in_user_id(client) is None
    assert events("auth.sign_in", tenant=cast.acme)[-1].result == "failure"


def test_response_for_another_request_is_refused(cast, acme_sso) -> None:
    client = https_client()
    key, _ = start_saml(client, acme_sso)

    response = post_acs(client, acme_sso, signed_saml_response(acme_sso, h.REQUEST_ID), key)

    assert response.status_code == 400
    assert signed_in_user_id(client) is None


def test_replayed_response_is_refused(cast, acme_sso) -> None:
    client = https_client()
    key, request_id = start_saml(client, acme_sso)
    saml_response = signed_saml_response(acme_sso, request_id)
    assert post_acs(client, acme_sso, saml_response, key).status_code == 302
    client.logout()
    thief = https_client()
    key2, _ = start_saml(thief, acme_sso)

    response = post_acs(thief, acme_sso, saml_response, key2)

    assert response.status_code == 400
    assert signed_in_user_id(thief) is None


def test_response_signed_by_another_key_is_refused(cast, acme_sso) -> None:
    client = https_client()
    key, request_id = start_saml(client, acme_sso)
    forged = h.encode(h.signed_response(h.spec_for(acme_sso, in_response_to=request_id), keys=h.other_keys()))

    response = post_acs(client, acme_sso, forged, key)

    assert response.status_code == 400
    assert signed_in_user_id(client) is None
    assert events("auth.sign_in", tenant=cast.acme)[-1].metadata["code"] == "signature"


def test_flow_is_single_use(cast, acme_sso) -> None:
    client = https_client()
    key, request_id = start_saml(client, acme_sso)
    saml_response = signed_saml_response(acme_sso, request_id)
    assert post_acs(client, acme_sso, saml_response, key).status_code == 302

    assert key not in (client.session.get("sso_flows") or {})


def test_sp_metadata_download(cast, acme_sso) -> None:
    response = https_client().get(f"/sso/saml/{acme_sso.public_id}/metadata/", {"download": "1"})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/samlmetadata+xml")
    assert "attachment" in response["Content-Disposition"]
    body = response.content.decode()
    assert f"https://bastion.example.com/sso/saml/{acme_sso.public_id}/metadata/" in body
    assert f"https://bastion.example.com{acs_path(acme_sso)}" in body


def test_unknown_connection_is_404(db) -> None:
    client = https_client()

    assert client.get("/sso/start/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.post("/sso/saml/00000000-0000-0000-0000-000000000000/acs/", {}).status_code == 404
    assert client.get("/sso/saml/not-a-uuid/metadata/").status_code == 404


def test_single_logout_ends_only_sessions_of_that_connection(cast, acme_sso) -> None:
    client = https_client()
    saml_sign_in(client, acme_sso)
    other = https_client(cast.member)  # a password/forced session, not through this connection

    # The IdP's signed LogoutRequest (a bare GET signs nobody out: tests/sso/test_saml_logout.py).
    client.get(f"/sso/saml/{acme_sso.public_id}/sls/", h.redirect_binding_query(h.logout_request_xml(acme_sso)))
    other.get(
        f"/sso/saml/{acme_sso.public_id}/sls/",
        h.redirect_binding_query(h.logout_request_xml(acme_sso, name_id="member@acme.example")),
    )

    assert signed_in_user_id(client) is None
    assert signed_in_user_id(other) == str(cast.member.pk)
