"""Emergency sign-in when the IdP is down, walked in a real browser (#11, item 8).

Acme requires SSO and its IdP is "down" (nobody can use it here). An Owner
creates an emergency account from the SSO settings and reads its credentials
off the one-time page; the account signs in with password and TOTP (a
password alone stops at the second-factor page), opens Acme and nothing else;
every Owner is e-mailed; the Owner sees the sign-in on the dashboard and
acknowledges it; staff see the tenant on their SSO page; rotating kills the
old password. Run with SCREENSHOT_DIR=/tmp/notes/shots to keep the pictures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core import mail

from apps.access.services import builtin_roles_seed
from apps.sso.models import EmergencySignIn
from apps.tenants.models import Membership
from tests.accounts.helpers import set_policy, sso_connection, totp_code
from tests.e2e.helpers import signed_in_context
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world():
    acme = TenantFactory(slug="acme", name="Acme Corp")
    globex = TenantFactory(slug="globex", name="Globex")
    builtin_roles_seed(tenant=acme)
    owner = UserFactory(email="owner@acme.example", full_name="Olivia Owner")
    MembershipFactory(tenant=acme, user=owner, role=Membership.Role.OWNER)
    MembershipFactory(tenant=globex, user=UserFactory(email="owner@globex.example"), role=Membership.Role.OWNER)
    staff = UserFactory(email="staff@bastion.example", is_staff=True)
    sso_connection(acme, name="Acme Okta")
    set_policy(acme, sso_required=True)
    return {"owner": owner, "staff": staff}


def _shot(page, directory: Path, name: str) -> None:
    page.screenshot(path=str(directory / f"emergency-{name}.png"), full_page=True)


def _sign_in(page, base: str, login: str, password: str) -> None:
    page.goto(f"{base}/accounts/login/")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", password)
    with page.expect_navigation():
        page.click("form button[type=submit]")


def test_owner_sets_up_an_emergency_account_that_gets_in_when_the_idp_is_down(
    world, live_server, browser, screenshot_dir
):
    base = live_server.url
    errors: list[str] = []
    owner = signed_in_context(browser, live_server, world["owner"]).new_page()
    owner.on("pageerror", lambda exc: errors.append(str(exc)))

    # 1. From the SSO settings to the emergency accounts page, and a new account.
    owner.goto(f"{base}/t/acme/settings/sso/")
    owner.click("text=Manage emergency accounts")
    owner.wait_for_url("**/t/acme/sso/emergency/")
    _shot(owner, screenshot_dir, "01-empty-list")
    owner.click("text=New emergency account")
    owner.fill("input[name=label]", "Safe in HQ, envelope A")
    owner.select_option("select[name=role]", "owner")
    _shot(owner, screenshot_dir, "02-create-form")
    with owner.expect_navigation():
        owner.click("button:has-text('Create and show the credentials')")
    login = owner.inner_text("#emergency-login").strip()
    password = owner.inner_text("#emergency-password").strip()
    secret = owner.inner_text("#emergency-totp-secret").strip()
    assert owner.locator("img.totp-qr").is_visible()
    _shot(owner, screenshot_dir, "03-credentials-once")
    owner.click("text=I have stored them")
    assert password not in owner.content()
    assert login in owner.content()
    _shot(owner, screenshot_dir, "04-list")

    # 2. The IdP is down. A password alone stops at the second factor; with TOTP it is in.
    emergency = browser.new_context(viewport={"width": 1280, "height": 860}).new_page()
    emergency.on("pageerror", lambda exc: errors.append(str(exc)))
    mail.outbox.clear()
    _sign_in(emergency, base, login, password)
    assert "/accounts/2fa/authenticate/" in emergency.url
    emergency.goto(f"{base}/t/acme/")
    assert "/accounts/" in emergency.url  # the password alone opened nothing: back to sign-in or its second step
    emergency.goto(f"{base}/accounts/2fa/authenticate/")  # the pending sign-in still waits for its code
    _shot(emergency, screenshot_dir, "05-second-factor")
    emergency.fill("input[name=code]", totp_code(secret))
    with emergency.expect_navigation():
        emergency.click("form button[type=submit]")
    emergency.goto(f"{base}/t/acme/settings/sso/")
    assert emergency.url.endswith("/t/acme/settings/sso/")  # no step-up to the broken IdP
    _shot(emergency, screenshot_dir, "06-signed-in-as-emergency")
    response = emergency.goto(f"{base}/t/globex/")
    assert response is not None
    assert response.status == 404
    assert [m.to for m in mail.outbox if "emergency account" in m.subject] == [["owner@acme.example"]]

    # 3. The Owner's dashboard shows it until acknowledged.
    owner.goto(f"{base}/t/acme/")
    card = owner.locator("#emergency-sign-ins-card")
    assert card.is_visible()
    assert "Safe in HQ" in card.inner_text()
    _shot(owner, screenshot_dir, "07-dashboard-card")
    with owner.expect_navigation():
        card.locator("button:has-text('Acknowledge')").click()
    assert owner.locator("#emergency-sign-ins-card").count() == 0
    assert EmergencySignIn.objects.get().acknowledged_at is not None
    _shot(owner, screenshot_dir, "08-acknowledged")

    # 4. Staff see which tenants keep emergency accounts and when they were last used.
    staff = signed_in_context(browser, live_server, world["staff"]).new_page()
    staff.goto(f"{base}/platform/sso/tenant-connections/")
    section = staff.locator("#emergency-accounts")
    assert "Acme Corp" in section.inner_text()
    assert "never" not in section.inner_text()
    _shot(staff, screenshot_dir, "09-staff-page")

    # 5. Rotating ends the emergency session and the old password.
    owner.goto(f"{base}/t/acme/sso/emergency/")
    owner.click("text=Rotate…")
    _shot(owner, screenshot_dir, "10-rotate-confirm")
    with owner.expect_navigation():
        owner.click("button:has-text('Rotate and show the new credentials')")
    new_password = owner.inner_text("#emergency-password").strip()
    assert new_password != password
    emergency.goto(f"{base}/t/acme/")
    assert "/accounts/login/" in emergency.url
    _sign_in(emergency, base, login, password)
    assert "/accounts/login/" in emergency.url  # the old password is refused
    _shot(emergency, screenshot_dir, "11-old-password-refused")
    assert errors == []
