"""Someone an administrator removed is not added back by SSO until invited again (JIT respects removals)."""

from __future__ import annotations

import pytest

from apps.accounts.models import User
from apps.sso.models import SSOConnection
from apps.tenants import services as tenant_services
from apps.tenants.models import Membership, MembershipRemoval
from tests.factories import MembershipFactory
from tests.sso.test_flow_support import (
    events,
    https_client,
    newest_flow,
    post_acs,
    saml_connection,
    saml_sign_in,
    signed_in_user_id,
    signed_saml_response,
    verify_domain,
)

pytestmark = pytest.mark.django_db

REFUSAL = "Your access to Acme Corp was removed by an administrator; ask them to invite you again."


@pytest.fixture
def acme_sso(cast) -> SSOConnection:
    verify_domain(cast.acme, "acme.example")
    return saml_connection(cast.acme)


def remove_member(membership: Membership, *, actor: User) -> None:
    """An administrator removes the member (the service records the removal)."""
    tenant_services.membership_remove(membership=membership, actor=actor)


def _ada_joins(connection: SSOConnection) -> Membership:
    assert saml_sign_in(https_client(), connection).status_code == 302
    return Membership.objects.get(tenant=connection.tenant, user__email="ada@acme.example")


def test_never_removed_people_are_provisioned(cast, acme_sso) -> None:
    membership = _ada_joins(acme_sso)

    assert membership.status == Membership.Status.ACTIVE
    assert not MembershipRemoval.objects.exists()


def test_a_removed_member_is_refused_with_the_way_back_and_audited(cast, acme_sso) -> None:
    membership = _ada_joins(acme_sso)
    remove_member(membership, actor=cast.admin)
    marker = MembershipRemoval.objects.get()
    assert (marker.tenant, marker.user.email, marker.removed_by) == (cast.acme, "ada@acme.example", cast.admin)

    browser = https_client()
    response = saml_sign_in(browser, acme_sso)

    assert response.status_code == 403
    assert REFUSAL in response.content.decode()
    assert signed_in_user_id(browser) is None
    assert not Membership.objects.filter(tenant=cast.acme, user__email="ada@acme.example").exists()
    denied = [e for e in events("auth.sign_in", tenant=cast.acme) if e.result == "denied"]
    assert [e.metadata["code"] for e in denied] == ["membership_removed"]
    assert denied[0].metadata["email"] == "ada@acme.example"


def test_a_withdrawn_invitation_also_keeps_the_person_out(cast, acme_sso) -> None:
    invited = tenant_services.membership_invite(tenant=cast.acme, email="ada@acme.example", actor=cast.admin)
    remove_member(invited, actor=cast.admin)

    response = saml_sign_in(https_client(), acme_sso)

    assert response.status_code == 403
    assert REFUSAL in response.content.decode()


def test_an_invitation_lets_the_person_back_in_and_clears_the_marker(cast, acme_sso) -> None:
    remove_member(_ada_joins(acme_sso), actor=cast.admin)

    tenant_services.membership_invite(tenant=cast.acme, email="ada@acme.example", actor=cast.admin)
    browser = https_client()
    response = saml_sign_in(browser, acme_sso)

    assert response.status_code == 302
    assert signed_in_user_id(browser) is not None
    membership = Membership.objects.get(tenant=cast.acme, user__email="ada@acme.example")
    assert membership.status == Membership.Status.ACTIVE
    assert not MembershipRemoval.objects.exists()  # forgiven on joining through the invitation


def test_inviting_again_clears_the_marker(cast, acme_sso) -> None:
    remove_member(_ada_joins(acme_sso), actor=cast.admin)
    assert MembershipRemoval.objects.exists()
    tenant_services.membership_invite(tenant=cast.acme, email="ada@acme.example", actor=cast.admin)
    assert not MembershipRemoval.objects.exists()


def test_a_removal_in_one_tenant_does_not_affect_another(cast, acme_sso) -> None:
    remove_member(_ada_joins(acme_sso), actor=cast.admin)
    ada = User.objects.get(email="ada@acme.example")
    MembershipFactory(tenant=cast.globex, user=ada)

    assert not MembershipRemoval.objects.filter(tenant=cast.globex).exists()
    assert MembershipRemoval.objects.filter(tenant=cast.acme, user=ada).count() == 1


def test_removing_again_keeps_one_marker_with_the_latest_actor(cast, acme_sso) -> None:
    remove_member(_ada_joins(acme_sso), actor=cast.owner)
    tenant_services.membership_invite(tenant=cast.acme, email="ada@acme.example", actor=cast.owner)
    invited = Membership.objects.get(tenant=cast.acme, user__email="ada@acme.example")
    remove_member(invited, actor=cast.admin)  # withdrawing an invitation counts as a removal too

    assert MembershipRemoval.objects.get().removed_by == cast.admin


def test_test_sign_in_reports_a_removed_person(cast, acme_sso) -> None:
    remove_member(_ada_joins(acme_sso), actor=cast.admin)
    admin = https_client(cast.admin)
    assert admin.post(f"/t/acme/settings/sso/connections/{acme_sso.pk}/test/").status_code == 302
    key, flow = newest_flow(admin, acme_sso)

    response = post_acs(admin, acme_sso, signed_saml_response(acme_sso, flow["request_id"]), key)
    page = admin.get(response["Location"]).content.decode()

    assert "was removed from Acme Corp by an administrator" in page
