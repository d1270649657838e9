"""The SSO set-up walked in a real browser, as an admin would (#9, items 1, 2, 4 and 6).

An owner adds an OpenID Connect connection (against the tests' loopback
provider): the redirect URI stays the same across a reload and a second tab;
enabling is refused after a test sign-in as somebody else and allowed after one
as themself, with the list of people losing password access on the way. Staff
switch the connection off from the platform page and back on goes the owner. An
admin who signs in through SSO turns on "SSO required" (a member's password
session ends) and then "IdP MFA for admins" (their own session without MFA ends).
Run with SCREENSHOT_DIR=… to keep the pictures.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from django.core import mail

from apps.access.services import builtin_roles_seed
from apps.sso import services
from apps.sso.models import SSOConnection, VerifiedDomain
from apps.tenants.models import Membership
from tests.accounts.helpers import enrol_totp, totp_code
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.sso.oidc_provider import CLIENT_ID, CLIENT_SECRET, OIDCProvider

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"
SETTINGS = "/t/acme/settings/sso/"


@pytest.fixture
def provider(settings):
    settings.SSO_ALLOW_INSECURE_LOOPBACK = True
    with OIDCProvider() as running:
        yield running


@pytest.fixture
def world():
    from django.utils import timezone

    acme = TenantFactory(slug="acme", name="Acme Corp")
    builtin_roles_seed(tenant=acme)
    owner = UserFactory(email="owner@acme.example", full_name="Olivia Owner")
    MembershipFactory(tenant=acme, user=owner, role=Membership.Role.OWNER)
    sam = UserFactory(email="sam@acme.example", full_name="Sam Admin", password=None)  # joined through SSO
    MembershipFactory(tenant=acme, user=sam, role=Membership.Role.ADMIN)
    member = UserFactory(email="mia@acme.example", full_name="Mia Member")
    MembershipFactory(tenant=acme, user=member, role=Membership.Role.MEMBER)
    staff = UserFactory(email="staff@bastion.example", full_name="Stan Staff", is_staff=True)
    VerifiedDomain.objects.create(tenant=acme, domain="acme.example", dns_token="t" * 32, verified_at=timezone.now())
    return {
        "owner": enrol_totp(owner),
        "member": enrol_totp(member),
        "staff": enrol_totp(staff),
    }


def _shot(page, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"sso-{name}.png"), full_page=True)


_USED_CODES: dict[str, str] = {}


def _fresh_code(secret: str) -> str:
    """A TOTP code not used before: a code is accepted once, so a second sign-in waits for the next period."""
    code = totp_code(secret)
    while _USED_CODES.get(secret) == code:
        time.sleep(1)
        code = totp_code(secret)
    _USED_CODES[secret] = code
    return code


def _password_sign_in(page, base: str, email: str, secret: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.fill("input[name=code]", _fresh_code(secret))
    page.click("form button[type=submit]")
    page.wait_for_load_state()
    assert "/accounts/" not in page.url, page.url


def _as(provider: OIDCProvider, email: str, sub: str) -> None:
    provider.user = {**provider.user, "email": email, "sub": sub}


def _enable(page, base: str, connection: SSOConnection) -> None:
    page.goto(f"{base}{SETTINGS}connections/{connection.pk}/enable/")
    page.check("input[name=confirm]")
    page.click("form button:has-text('Enable connection')")
    page.wait_for_load_state()


def test_admin_sets_up_sso_without_locking_themself_out(world, provider, live_server, browser, screenshot_dir):
    base = live_server.url
    errors: list[str] = []
    owner_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    page = owner_ctx.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    member_page = browser.new_context().new_page()
    _password_sign_in(member_page, base, "mia@acme.example", world["member"])

    # 1. The SP details are fixed from the first visit: reload and a second tab show the same.
    _password_sign_in(page, base, "owner@acme.example", world["owner"])
    page.goto(f"{base}{SETTINGS}connections/new/oidc/")
    _shot(page, screenshot_dir, "01-add-oidc")
    first = page.inner_text("[data-sp=redirect_uri]")
    page.reload()
    second_tab = owner_ctx.new_page()
    second_tab.goto(f"{base}{SETTINGS}connections/new/oidc/")
    assert page.inner_text("[data-sp=redirect_uri]") == first == second_tab.inner_text("[data-sp=redirect_uri]")
    second_tab.close()
    page.goto(f"{base}{SETTINGS}connections/new/saml/")
    with page.expect_download() as download:
        page.click("#sp-metadata-download")
    assert page.inner_text("[data-sp=acs_url]") in Path(download.value.path()).read_text()
    _shot(page, screenshot_dir, "02-add-saml-metadata")

    page.goto(f"{base}{SETTINGS}connections/new/oidc/")
    page.fill("input[name=name]", "Acme IdP")
    page.fill("input[name=issuer]", provider.issuer)
    page.fill("input[name=client_id]", CLIENT_ID)
    page.fill("input[name=client_secret]", CLIENT_SECRET)
    page.click("form button[type=submit]")
    page.wait_for_url("**/connections/*/")
    connection = SSOConnection.objects.get(name="Acme IdP")
    assert first.endswith(f"/sso/oidc/{connection.public_id}/callback/")

    # 2. Enabling: who loses password access; refused until the owner tested as themself.
    page.goto(f"{base}{SETTINGS}connections/{connection.pk}/enable/")
    losers = page.inner_text("#password-losers")
    assert "owner@acme.example" in losers
    assert "sam@acme.example" in losers
    assert "mia@acme.example" not in losers
    _shot(page, screenshot_dir, "03-enable-needs-self-test")
    _as(provider, "sam@acme.example", "sub-sam")  # a colleague's account at the IdP
    page.click("button:has-text('Test sign-in as yourself')")
    page.wait_for_url("**/test/result/")
    _shot(page, screenshot_dir, "04-test-as-someone-else")
    _enable(page, base, connection)
    assert "as yourself" in page.content()
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.TESTED
    _shot(page, screenshot_dir, "05-enable-refused")

    _as(provider, "owner@acme.example", "sub-owner")
    page.click("button:has-text('Test sign-in as yourself')")
    page.wait_for_url("**/test/result/")
    assert "Yes: you can enable this connection." in page.content()
    page.goto(f"{base}{SETTINGS}connections/{connection.pk}/enable/")
    _shot(page, screenshot_dir, "06-enable-confirm")
    _enable(page, base, connection)
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.ENABLED
    assert connection.is_primary
    # The owner's own password session ended with it, as the page said.
    page.goto(f"{base}/t/acme/")
    assert "/accounts/login/" in page.url
    _shot(page, screenshot_dir, "07-owner-password-session-ended")

    # 3. Platform staff switch the connection off from the staff page (audited, owners e-mailed).
    staff_page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    _password_sign_in(staff_page, base, "staff@bastion.example", world["staff"])
    staff_page.goto(f"{base}/platform/sso/tenant-connections/")
    _shot(staff_page, screenshot_dir, "08-staff-connections")
    staff_page.click("a:has-text('Disable…')")
    staff_page.fill("textarea[name=reason]", "Owner locked out, ticket 4711")
    _shot(staff_page, screenshot_dir, "09-staff-disable")
    staff_page.click("button:has-text('Disable connection')")
    staff_page.wait_for_url("**/platform/sso/tenant-connections/")
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.DISABLED
    assert any("ticket 4711" in message.body and message.to == ["owner@acme.example"] for message in mail.outbox)

    # The owner is back in with a password, and enables it again (the self-test still holds).
    _password_sign_in(page, base, "owner@acme.example", world["owner"])
    _enable(page, base, connection)
    connection.refresh_from_db()
    assert connection.status == SSOConnection.Status.ENABLED

    # 4. Sam, an admin who signs in through SSO (no MFA at the IdP), tightens the policy.
    sam = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    _as(provider, "sam@acme.example", "sub-sam")
    sam.goto(f"{base}/sso/start/{connection.public_id}/?next=/t/acme/settings/sso/policy/")
    sam.wait_for_url("**/t/acme/settings/sso/policy/")
    # A second enabled connection, which sorts first by name: Sam makes it primary, and routes the
    # company's domain to the first one, which discovery then uses for that domain.
    backup = SSOConnection.objects.create(
        tenant=connection.tenant, kind="oidc", name="Acme Backup", status="enabled", config=connection.config
    )
    sam.goto(f"{base}{SETTINGS}connections/{backup.pk}/")
    sam.click("button:has-text('Make primary')")
    sam.wait_for_load_state()
    backup.refresh_from_db()
    assert backup.is_primary
    sam.goto(f"{base}{SETTINGS}connections/{connection.pk}/")
    sam.select_option("#route-domain", label="acme.example")
    sam.click("button:has-text('to this connection')")
    sam.wait_for_load_state()
    _shot(sam, screenshot_dir, "10-routed-domain")
    assert services.connection_for_email("anyone@acme.example") == connection
    sam.goto(f"{base}{SETTINGS}policy/")

    member_page.goto(f"{base}/t/acme/")
    assert "/accounts/login/" not in member_page.url  # members may still use passwords
    sam.check("input[name=sso_required]")
    sam.click("form button[type=submit]")
    sam.wait_for_load_state()
    _shot(sam, screenshot_dir, "11-policy-sso-required")
    member_page.goto(f"{base}/t/acme/")
    assert "/accounts/login/" in member_page.url  # ended at once, not at its next expiry
    _shot(member_page, screenshot_dir, "12-member-password-session-ended")

    sam.check("input[name=mfa_required_admin_sso]")
    sam.click("form button[type=submit]")
    sam.wait_for_load_state()
    sam.goto(f"{base}/t/acme/")
    assert "/accounts/login/" in sam.url  # Sam's own session had no IdP MFA
    _shot(sam, screenshot_dir, "13-admin-without-mfa-ended")
    assert errors == []
