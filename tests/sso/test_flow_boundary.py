"""Tenant boundary of SSO sign-in: tenant A's IdP can never sign anyone into tenant B or take over B's accounts."""

from __future__ import annotations

import pytest

from apps.sso.models import ExternalIdentity, VerifiedDomain
from apps.tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory
from tests.sso.test_flow_support import (
    attributes,
    events,
    https_client,
    saml_connection,
    saml_sign_in,
    signed_in_user_id,
    verify_domain,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(cast):
    """Acme (acme.example) and Globex (globex.example) each own a verified domain; Acme has SSO."""
    verify_domain(cast.acme, "acme.example")
    verify_domain(cast.globex, "globex.example")
    return saml_connection(cast.acme)


def _globex_state(cast) -> list[tuple]:
    return list(
        Membership.objects.filter(tenant=cast.globex)
        .order_by("pk")
        .values_list("user_id", "status", "role", "idp_groups")
    )


def test_email_of_another_tenants_domain_is_refused(cast, setup) -> None:
    before = _globex_state(cast)
    client = https_client()

    response = saml_sign_in(
        client, setup, name_id="mallory@globex.example", attributes=attributes("mallory@globex.example")
    )

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert _globex_state(cast) == before
    assert not ExternalIdentity.objects.exists()
    (event,) = events("auth.sign_in", tenant=cast.acme)
    assert (event.result, event.metadata["code"]) == ("denied", "domain")
    assert event.metadata["email"] == "mallory@globex.example"
    assert events("auth.sign_in", tenant=cast.globex) == []


def test_other_tenants_admin_account_cannot_be_taken_over(cast, setup) -> None:
    """Acme's IdP asserts the address of Globex's owner: no link, no session, no change at Globex."""
    before = _globex_state(cast)
    client = https_client()

    response = saml_sign_in(
        client, setup, name_id="owner@globex.example", attributes=attributes("owner@globex.example")
    )

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert not ExternalIdentity.objects.filter(user=cast.globex_owner).exists()
    assert not Membership.objects.filter(tenant=cast.acme, user=cast.globex_owner).exists()
    assert _globex_state(cast) == before


def test_unclaimed_domain_is_refused(cast, setup) -> None:
    client = https_client()

    response = saml_sign_in(client, setup, name_id="x@elsewhere.example", attributes=attributes("x@elsewhere.example"))

    assert response.status_code == 403
    assert signed_in_user_id(client) is None


def test_domain_verified_for_the_platform_does_not_count_for_a_tenant(cast, setup) -> None:
    VerifiedDomain.objects.create(tenant=None, domain="bastion.example", verified_at=cast.acme.created_at)
    client = https_client()

    response = saml_sign_in(
        client, setup, name_id="staff@bastion.example", attributes=attributes("staff@bastion.example")
    )

    assert response.status_code == 403
    assert signed_in_user_id(client) is None


def test_platform_staff_never_sign_in_through_a_tenant_idp(cast, setup) -> None:
    UserFactory(email="root@acme.example", is_staff=True)
    client = https_client()

    response = saml_sign_in(client, setup, name_id="root@acme.example", attributes=attributes("root@acme.example"))

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert events("auth.sign_in", tenant=cast.acme)[-1].metadata["code"] == "staff"


def test_sign_in_only_touches_the_connections_tenant(cast, setup) -> None:
    """A person who is also a Globex member signs in through Acme: only the Acme membership changes."""
    ada = UserFactory(email="ada@acme.example", password=None)
    globex_membership = MembershipFactory(tenant=cast.globex, user=ada, role="viewer", idp_groups=["globex-team"])
    client = https_client()

    response = saml_sign_in(client, setup)

    assert response.status_code == 302
    globex_membership.refresh_from_db()
    assert (globex_membership.role, globex_membership.idp_groups) == ("viewer", ["globex-team"])
    assert Membership.objects.get(tenant=cast.acme, user=ada).idp_groups == ["engineering", "admins"]


def test_disabled_membership_elsewhere_stays_disabled(cast, setup) -> None:
    ada = UserFactory(email="ada@acme.example")
    MembershipFactory(tenant=cast.globex, user=ada, status="disabled")

    saml_sign_in(https_client(), setup)

    assert Membership.objects.get(tenant=cast.globex, user=ada).status == "disabled"


def test_linked_identity_of_another_connection_is_not_reused(cast, setup) -> None:
    """The same subject at Globex's IdP is another identity: it grants nothing at Acme and vice versa."""
    globex_sso = saml_connection(cast.globex)
    client = https_client()

    saml_sign_in(client, setup)  # ada@acme.example linked at Acme
    response = saml_sign_in(https_client(), globex_sso)  # Globex's IdP asserts the same subject and e-mail

    assert response.status_code == 403  # acme.example is not Globex's domain
    assert not Membership.objects.filter(tenant=cast.globex, user__email="ada@acme.example").exists()
