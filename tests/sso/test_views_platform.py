"""The platform's own SSO (/platform/sso/): staff set up, test and enable it; then staff sign in through it only."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from apps.accounts.models import User
from apps.sso.models import ExternalIdentity, SignInPolicy, SSOConnection, VerifiedDomain
from apps.tenants.models import Membership
from tests.accounts.helpers import password_sign_in
from tests.conftest import PASSWORD
from tests.sso import saml_helpers as h
from tests.sso.test_flow_support import (
    attributes,
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

BASE = "/platform/sso/"
STAFF_EMAIL = "staff@bastion.example"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def platform_connection(*, status: str = SSOConnection.Status.ENABLED) -> SSOConnection:
    """A SAML connection of the platform (tenant null) trusting the helpers' IdP key."""
    connection = saml_connection(None, status=status)  # the helper gives it a throwaway tenant
    SSOConnection.objects.filter(pk=connection.pk).update(tenant=None)
    connection.refresh_from_db()
    return connection


def _staff_attributes(email: str = STAFF_EMAIL) -> dict:
    return {"name_id": email, "attributes": attributes(email, groups=())}


@pytest.mark.parametrize(
    "page",
    ["", "connections/new/saml/", "connections/new/oidc/", "policy/", "connections/{pk}/", "connections/{pk}/edit/"],
)
def test_staff_only(cast, page) -> None:
    connection = platform_connection()
    url = BASE + page.format(pk=connection.pk)

    assert https_client().get(url).status_code == 302
    for user in (cast.owner, cast.admin, cast.member, cast.outsider):
        assert https_client(user).get(url).status_code == 404
    assert https_client(cast.staff).get(url).status_code == 200


def test_posts_by_non_staff_are_404(cast) -> None:
    connection = platform_connection(status=SSOConnection.Status.TESTED)

    for action in ("test/", "enable/", "disable/", "delete/", "edit/"):
        assert https_client(cast.owner).post(f"{BASE}connections/{connection.pk}/{action}").status_code == 404
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.TESTED


def test_tenant_connections_are_not_reachable_from_the_platform_pages(cast) -> None:
    theirs = saml_connection(cast.acme)
    staff = https_client(cast.staff)

    assert staff.get(f"{BASE}connections/{theirs.pk}/").status_code == 404
    assert staff.post(f"{BASE}connections/{theirs.pk}/disable/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == SSOConnection.Status.ENABLED
    assert "Okta" not in staff.get(BASE).content.decode()


def test_platform_nav_links_to_sso(cast) -> None:
    page = https_client(cast.staff).get("/platform/").content.decode()
    assert 'href="/platform/sso/"' in page


def test_add_oidc_page_and_policy_page_render(cast) -> None:
    staff = https_client(cast.staff)
    assert "client_secret" in staff.get(BASE + "connections/new/oidc/").content.decode()
    page = staff.get(BASE + "policy/").content.decode()
    assert "session_idle_minutes" in page


def test_platform_policy_saves_with_tenant_null(cast) -> None:
    response = https_client(cast.staff).post(
        BASE + "policy/",
        {"mfa_required_local": "on", "session_absolute_minutes": "240", "session_idle_minutes": "20"},
    )

    assert response.status_code == 302
    assert response["Location"] == BASE + "policy/"
    policy = SignInPolicy.objects.get(tenant__isnull=True)
    assert (policy.session_absolute_minutes, policy.session_idle_minutes) == (240, 20)
    assert [e for e in events("sso.policy_update") if e.tenant_id is None]


def test_create_test_enable_then_staff_sign_in_only_through_sso(cast) -> None:
    verify_domain(None, "bastion.example")
    staff = https_client(cast.staff)

    # 1. add from metadata (one of the three SAML ways)
    page = staff.get(BASE + "connections/new/saml/").content.decode()
    draft_id = page.split('name="draft_id" value="')[1].split('"')[0]
    response = staff.post(
        BASE + "connections/new/saml/",
        {
            "name": "Staff Entra",
            "source": "metadata_xml",
            "metadata_xml": h.idp_metadata_xml(),
            "want_assertion_signed": "on",
            "preset": "okta",
            "draft_id": draft_id,
        },
    )
    assert response.status_code == 302, response.content[:2000]
    connection = SSOConnection.objects.get(tenant__isnull=True)
    assert response["Location"] == f"{BASE}connections/{connection.pk}/"
    assert connection.status == SSOConnection.Status.DRAFT
    assert [e for e in events("sso.connection_create") if e.tenant_id is None]
    detail = staff.get(response["Location"]).content.decode()
    assert f"{BASE}connections/{connection.pk}/test/" in detail
    assert "Staff Entra" in staff.get(BASE).content.decode()

    # 2. enabling before a test is refused
    staff.post(f"{BASE}connections/{connection.pk}/enable/")
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.DRAFT

    # 3. test sign-in by staff: the report comes back, nobody else is signed in
    response = staff.post(f"{BASE}connections/{connection.pk}/test/")
    assert response.status_code == 302
    key, flow = newest_flow(staff, connection)
    assert flow["mode"] == "test"
    response = post_acs(
        staff, connection, signed_saml_response(connection, flow["request_id"], **_staff_attributes()), key
    )
    assert response.status_code == 302
    assert response["Location"] == f"{BASE}connections/{connection.pk}/test/result/"
    result = staff.get(response["Location"])
    assert result.status_code == 200
    assert STAFF_EMAIL in result.content.decode()
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.TESTED

    # 4. enable (the test above was the staff member's own account; the confirmation names who loses passwords)
    page = staff.get(f"{BASE}connections/{connection.pk}/enable/").content.decode()
    assert STAFF_EMAIL in page
    response = staff.post(f"{BASE}connections/{connection.pk}/enable/", {"confirm": "on"})
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.ENABLED
    assert [e for e in events("sso.connection_enable") if e.tenant_id is None]

    # 5. staff password sign-in is refused, naming the platform connection
    refused = password_sign_in(https_client(), STAFF_EMAIL, PASSWORD)
    body = refused.content.decode()
    assert "Platform staff sign in through single sign-on" in body
    assert "Staff Entra" in body
    assert f"/sso/start/{connection.public_id}/" in body

    # 6. SSO sign-in of the existing staff user (who has a password and TOTP): the first one is
    #    refused until they confirm the link with that password and second factor, once.
    from tests.accounts.helpers import MFA_STAGE, enrol_totp, totp_code

    secret = enrol_totp(cast.staff)
    browser = https_client()
    refused = saml_sign_in(browser, connection, **_staff_attributes())
    assert refused.status_code == 403
    assert events("auth.sign_in")[-1].metadata["code"] == "link_confirm"
    assert not ExternalIdentity.objects.filter(connection=connection, user=cast.staff).exists()
    start = f"/sso/start/{connection.public_id}/"
    assert password_sign_in(browser, STAFF_EMAIL, PASSWORD, next_url=start)["Location"] == MFA_STAGE
    assert browser.post(MFA_STAGE, {"code": totp_code(secret)})["Location"] == start
    response = saml_sign_in(browser, connection, **_staff_attributes())
    assert response.status_code == 302
    assert signed_in_user_id(browser) == str(cast.staff.pk)
    assert ExternalIdentity.objects.filter(connection=connection, user=cast.staff).exists()
    assert not Membership.objects.filter(user=cast.staff).exists()


def test_test_result_of_the_platform_connection_is_for_staff_only(cast) -> None:
    """A tenant admin cannot reach a platform test (404) nor see a report of one."""
    connection = platform_connection(status=SSOConnection.Status.DRAFT)
    admin = https_client(cast.admin)
    assert admin.post(f"{BASE}connections/{connection.pk}/test/").status_code == 404


def test_platform_connection_never_creates_users_or_memberships(cast) -> None:
    verify_domain(None, "bastion.example")
    connection = platform_connection()
    users_before = User.objects.count()
    memberships_before = Membership.objects.count()

    browser = https_client()
    response = saml_sign_in(browser, connection, **_staff_attributes("newcomer@bastion.example"))

    assert response.status_code in (400, 403)
    assert signed_in_user_id(browser) is None
    assert User.objects.count() == users_before
    assert Membership.objects.count() == memberships_before


def test_platform_connection_refuses_non_staff_accounts(cast) -> None:
    verify_domain(None, "acme.example")
    connection = platform_connection()

    browser = https_client()
    response = saml_sign_in(browser, connection, **_staff_attributes(cast.member.email))

    assert response.status_code in (400, 403)
    assert signed_in_user_id(browser) is None
    assert Membership.objects.filter(user=cast.member).count() == 1


def test_staff_claim_verify_and_release_a_platform_domain(cast) -> None:
    assert https_client(cast.owner).get(BASE + "domains/").status_code == 404
    staff = https_client(cast.staff)

    response = staff.post(BASE + "domains/", {"domain": "Bastion.Example"})

    assert response.status_code == 302
    claim = VerifiedDomain.objects.get(domain="bastion.example")
    assert claim.tenant is None
    page = staff.get(BASE + "domains/").content.decode()
    assert f"bastion-verify={claim.dns_token}" in page
    assert staff.post(BASE + "domains/", {"domain": "bastion.example"}).status_code == 400  # already ours
    assert staff.post(f"/sso/staff/domains/{claim.pk}/verify/", {"reason": "our own domain"}).status_code == 302
    claim.refresh_from_db()
    assert claim.verified_at is not None

    tenant_claim = verify_domain(cast.acme, "acme.example")
    assert staff.post(f"{BASE}domains/{tenant_claim.pk}/release/").status_code == 404  # not the platform's
    assert staff.post(f"{BASE}domains/{claim.pk}/release/").status_code == 302
    assert list(VerifiedDomain.objects.values_list("domain", flat=True)) == ["acme.example"]


@pytest.mark.django_db
def test_platform_policy_has_no_sso_required_toggle(cast) -> None:
    from tests.sso.test_flow_support import https_client

    page = https_client(cast.staff).get("/platform/sso/policy/").content.decode()
    assert 'name="session_idle_minutes"' in page
    assert 'name="sso_required"' not in page
