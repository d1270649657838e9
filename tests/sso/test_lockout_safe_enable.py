"""Enabling SSO cannot lock its own admin out; staff can switch a tenant's connection off (#9, item 2).

Attacks and slips: enabling after a test sign-in made with someone else's IdP
account (or before any), enabling without seeing who loses passwords, reusing a
self-test made before the trust material changed, a tenant admin reaching the
staff page, staff disabling without saying why.
"""

from __future__ import annotations

import pytest

from apps.access import services as access_services
from apps.sso import services
from apps.sso.models import SSOConnection
from apps.sso.policy import policy_update
from apps.sso.services import SSOInputError
from apps.tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory
from tests.sso import saml_helpers as h
from tests.sso.test_flow_support import (
    attributes,
    events,
    https_client,
    newest_flow,
    post_acs,
    saml_connection,
    signed_saml_response,
    verify_domain,
)

pytestmark = pytest.mark.django_db
BASE = "/t/acme/settings/sso/"


@pytest.fixture
def draft(cast) -> SSOConnection:
    verify_domain(cast.acme, "acme.example")
    return saml_connection(cast.acme, status=SSOConnection.Status.DRAFT)


def _test_sign_in(client, connection, email: str):
    client.post(f"{BASE}connections/{connection.pk}/test/")
    key, flow = newest_flow(client, connection)
    spec = {"name_id": email, "attributes": attributes(email)}
    return post_acs(client, connection, signed_saml_response(connection, flow["request_id"], **spec), key)


def test_a_test_as_someone_else_does_not_allow_enabling(cast, draft) -> None:
    admin = https_client(cast.admin)
    _test_sign_in(admin, draft, "ada@acme.example")  # a colleague's IdP account (or one the admin controls)
    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.TESTED

    response = admin.post(f"{BASE}connections/{draft.pk}/enable/", {"confirm": "on"})

    assert response.status_code == 400
    assert "as yourself" in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.TESTED
    with pytest.raises(SSOInputError):
        services.connection_set_status(connection=draft, enabled=True, actor=cast.admin, lockout_acknowledged=True)


def test_another_admins_self_test_does_not_count_for_me(cast, draft) -> None:
    _test_sign_in(https_client(cast.owner), draft, "OWNER@acme.example")  # the owner tested as themself
    draft.refresh_from_db()
    assert draft.self_tested == {str(cast.owner.pk): draft.trust_epoch}  # case-insensitive e-mail match

    with pytest.raises(SSOInputError, match="as yourself"):
        services.connection_set_status(connection=draft, enabled=True, actor=cast.admin, lockout_acknowledged=True)
    services.connection_set_status(connection=draft, enabled=True, actor=cast.owner, lockout_acknowledged=True)


def test_enabling_needs_the_confirmation(cast, draft) -> None:
    admin = https_client(cast.admin)
    _test_sign_in(admin, draft, "admin@acme.example")

    unconfirmed = admin.post(f"{BASE}connections/{draft.pk}/enable/")
    assert unconfirmed.status_code == 400
    with pytest.raises(SSOInputError, match="Confirm"):
        services.connection_set_status(connection=draft, enabled=True, actor=cast.admin)
    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.TESTED

    response = admin.post(f"{BASE}connections/{draft.pk}/enable/", {"confirm": "on"})

    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == SSOConnection.Status.ENABLED
    assert draft.is_primary


def test_a_self_test_before_a_trust_change_does_not_count(cast, draft) -> None:
    admin = https_client(cast.admin)
    _test_sign_in(admin, draft, "admin@acme.example")
    draft.refresh_from_db()
    # The trust material changes (another certificate); the old self-test was for the old IdP.
    updated = services.connection_update(
        connection=draft,
        name=draft.name,
        saml=services.SAMLSettings(
            source="manual", entity_id=h.IDP_ENTITY_ID, sso_url=h.IDP_SSO_URL, certificate=h.other_keys().cert_pem
        ),
        attribute_mapping=draft.attribute_mapping,
        actor=cast.admin,
    )
    SSOConnection.objects.filter(pk=updated.pk).update(
        config={**updated.config, "tested_at": "2026-01-01T00:00:00+00:00"}
    )
    updated.refresh_from_db()

    with pytest.raises(SSOInputError, match="as yourself"):
        services.connection_set_status(connection=updated, enabled=True, actor=cast.admin, lockout_acknowledged=True)


def test_enable_page_lists_who_loses_password_access(cast, draft) -> None:
    # A member made admin through a bound role counts (asked of access, not the role name).
    custom = UserFactory(email="custom-admin@acme.example")
    membership = MembershipFactory(tenant=cast.acme, user=custom, role=Membership.Role.MEMBER)
    role = access_services.role_create(tenant=cast.acme, key="ssoadm", name="SSO admins", permissions=["sso.manage"])
    access_services.binding_create(role=role, membership=membership)
    admin = https_client(cast.admin)

    page = admin.get(f"{BASE}connections/{draft.pk}/enable/").content.decode()

    losers = page.split('id="password-losers"')[1].split("</section>")[0]
    for email in ("owner@acme.example", "admin@acme.example", "custom-admin@acme.example"):
        assert email in losers
    assert "member@acme.example" not in losers
    assert "Test sign-in as yourself" in page
    policy_update(tenant=cast.acme, sso_required=True)
    losers = admin.get(f"{BASE}connections/{draft.pk}/enable/").content.decode().split('id="password-losers"')[1]
    assert "member@acme.example" in losers.split("</section>")[0]


# --- platform staff switch a tenant's connection off ---------------------------------------------------


STAFF_PAGE = "/platform/sso/tenant-connections/"


def test_only_staff_reach_the_staff_page(cast) -> None:
    connection = saml_connection(cast.acme)
    for user in (cast.owner, cast.admin, cast.member, cast.outsider, None):
        client = https_client(user)
        assert client.get(STAFF_PAGE).status_code in (302, 404)
        client.post(f"{STAFF_PAGE}{connection.pk}/disable/", {"reason": "x"})
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.ENABLED


def test_staff_disable_is_audited_and_mailed_to_owners(cast, django_capture_on_commit_callbacks, mailoutbox) -> None:
    primary = saml_connection(cast.acme)
    other = saml_connection(cast.acme)
    SSOConnection.objects.filter(pk=other.pk).update(name="Backup IdP")
    services.connection_make_primary(connection=primary, actor=cast.owner)
    primary.refresh_from_db()
    assert primary.is_primary
    staff = https_client(cast.staff)
    assert "Acme" in staff.get(STAFF_PAGE).content.decode()

    no_reason = staff.post(f"{STAFF_PAGE}{primary.pk}/disable/", {"reason": "  "})
    assert no_reason.status_code == 400
    with django_capture_on_commit_callbacks(execute=True):
        response = staff.post(f"{STAFF_PAGE}{primary.pk}/disable/", {"reason": "Owner locked out, ticket 7"})

    assert response.status_code == 302
    primary.refresh_from_db()
    other.refresh_from_db()
    assert primary.status == SSOConnection.Status.DISABLED
    assert not primary.is_primary
    assert other.is_primary  # the remaining enabled connection takes over
    (event,) = events("sso.connection_staff_disable", tenant=cast.acme)
    assert event.metadata["reason"] == "Owner locked out, ticket 7"
    assert event.metadata["severity"] == "high"
    assert event.actor_id == str(cast.staff.pk)
    assert [m.to for m in mailoutbox] == [["owner@acme.example"]]
    assert "ticket 7" in mailoutbox[0].body


def test_staff_cannot_disable_the_platform_connection_here(cast) -> None:
    platform = SSOConnection.objects.create(
        tenant=None, kind="saml", name="Staff IdP", status=SSOConnection.Status.ENABLED
    )
    staff = https_client(cast.staff)

    assert staff.post(f"{STAFF_PAGE}{platform.pk}/disable/", {"reason": "x"}).status_code == 404
    platform.refresh_from_db()
    assert platform.status == SSOConnection.Status.ENABLED
