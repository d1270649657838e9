"""The console under its Content-Security-Policy, in a real browser.

Chromium enforces the policy Bastion sends: every page is walked while the
browser reports each ``securitypolicyviolation`` event and CSP console message,
and none may appear. The page's own behaviour (htmx filters, the 400 swap, the
SSO preset script, confirmation dialogs) must still work with inline script and
eval refused; injected inline script must not run.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from allauth.mfa.models import Authenticator

from apps.access.services import builtin_roles_seed
from apps.audit.services import Actor, record
from apps.catalog.models import Dataset
from apps.sso.models import VerifiedDomain
from apps.tenants.models import Membership
from tests.accounts.helpers import enrol_totp, totp_code
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"

# Runs in every document before its own scripts: forwards each CSP violation to the test.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.reportViolation(`${event.violatedDirective} blocked ${event.blockedURI || "inline"} on ${location.pathname}`);
});
"""


@pytest.fixture
def acme():
    acme = TenantFactory(slug="acme", name="Acme Corp")
    builtin_roles_seed(tenant=acme)
    owner = UserFactory(email="owner@acme.example", full_name="Olivia Owner", is_staff=True)
    MembershipFactory(tenant=acme, user=owner, role=Membership.Role.OWNER)
    Dataset.objects.create(tenant=acme, name="support-tickets", classification="confidential")
    Dataset.objects.create(tenant=acme, name="product-docs", classification="internal")
    VerifiedDomain.objects.create(tenant=acme, domain="acme.example", verified_at=datetime.now(tz=UTC))
    for action in ("member.invite", "role.update", "dataset.create"):
        record(action, tenant=acme, actor=Actor.for_user(owner), target_type="membership", target_id=1)
    acme.owner_totp_secret = enrol_totp(owner)
    return acme


def test_console_works_under_the_policy_and_nothing_is_blocked(acme, live_server, browser, screenshot_dir) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    violations: list[str] = []
    context.expose_function("reportViolation", lambda text: violations.append(text))
    context.add_init_script(REPORT_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    headers: dict[str, str] = {}

    def remember_headers(response) -> None:
        if response.request.resource_type == "document":
            headers[response.url] = response.headers.get("content-security-policy", "")

    page.on("response", remember_headers)

    # Sign in: password, then the second factor.
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=login]", "owner@acme.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    page.wait_for_url("**/accounts/2fa/authenticate/")
    page.fill("input[name=code]", totp_code(acme.owner_totp_secret))
    with page.expect_navigation():  # wait for the submit's own navigation, not the page already loaded
        page.click("form button[type=submit]")
    assert "/accounts/" not in page.url

    for path, expected in [
        ("/t/acme/", "Acme Corp"),
        ("/t/acme/members/", "owner@acme.example"),
        ("/t/acme/catalog/datasets/", "support-tickets"),
        ("/t/acme/access/roles/", "Developer"),
        ("/t/acme/access/denied/", "Denied"),
        ("/t/acme/settings/sso/", "Single sign-on"),
        ("/platform/", "Acme Corp"),
        ("/accounts/2fa/", "Authenticator"),
        ("/sso/discover/", "Sign in"),
        ("/no-such-page/", "Page not found"),
    ]:
        page.goto(f"{live_server.url}{path}")
        assert expected in page.content(), path
        # Its own scripts ran: htmx is there and evaluates nothing, bastion.js is loaded.
        if path != "/sso/discover/":
            assert page.evaluate("typeof window.htmx") == "object", path
            assert page.evaluate("htmx.config.allowEval === false && htmx.config.includeIndicatorStyles === false")

    # allauth's security-key page: its scripts are static files and its data blocks JSON, so they
    # run under the policy, and Permissions-Policy leaves WebAuthn to Bastion's own origin.
    # A virtual authenticator (Chromium DevTools) stands in for the key.
    devtools = context.new_cdp_session(page)
    devtools.send("WebAuthn.enable")
    authenticator = devtools.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "usb",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )["authenticatorId"]
    page.goto(f"{live_server.url}/accounts/2fa/webauthn/add/")
    if "/accounts/reauthenticate/" in page.url:
        page.fill("input[name=password]", PASSWORD)
        page.click("form button[type=submit]")
        page.wait_for_url("**/accounts/2fa/webauthn/add/")
    assert page.evaluate("typeof window.allauth.webauthn") == "object"  # allauth's webauthn.js ran
    page.fill("input[name=name]", "Test key")
    page.click("#mfa_webauthn_add")
    page.wait_for_load_state()
    page.wait_for_timeout(1000)
    credentials = devtools.send("WebAuthn.getCredentials", {"authenticatorId": authenticator})["credentials"]
    assert len(credentials) == 1, page.content()[-2000:]  # the browser created the key for Bastion
    assert Authenticator.objects.filter(user__email="owner@acme.example", type=Authenticator.Type.WEBAUTHN).exists()

    # htmx under the policy: a filter swaps the results in place, and a 400 with the
    # form's errors is swapped in too (static/js/bastion.js, no hx-on eval).
    page.goto(f"{live_server.url}/t/acme/audit/")
    page.fill("input[name=action]", "role.")
    with page.expect_response(lambda r: "/t/acme/audit/" in r.url and r.request.headers.get("hx-request") == "true"):
        page.click("#main form.filters button[type=submit]")
    page.wait_for_url("**/t/acme/audit/?*action=role.*")
    results = page.inner_text("#audit-results")
    assert "role.update" in results
    assert "member.invite" not in results
    page.fill("input[name=action]", "")
    page.fill("input[name=date_from]", "not-a-date")
    with page.expect_response(lambda r: r.status == 400):
        page.click("#main form.filters button[type=submit]")
    page.wait_for_selector("#audit-results [role=alert]")
    assert "is not a date or time" in page.inner_text("#audit-results")
    page.fill("input[name=date_from]", "")
    page.fill("input[name=action]", "member.")
    page.click("#main form.filters button[type=submit]")
    page.wait_for_selector("#audit-results >> text=member.invite")
    page.screenshot(path=str(screenshot_dir / "csp-audit-log.png"), full_page=True)

    # The SSO mapping presets (moved out of an inline <script>) still fill the fields.
    page.goto(f"{live_server.url}/t/acme/settings/sso/connections/new/saml/")
    page.select_option("select[name=preset]", "entra")
    assert page.input_value("#id_attr_email").endswith("/claims/emailaddress")
    page.screenshot(path=str(screenshot_dir / "csp-sso-new-saml.png"), full_page=True)

    # Confirmation before removing a domain (moved out of onsubmit=): dismissing keeps it.
    page.goto(f"{live_server.url}/t/acme/settings/sso/domains/")
    questions: list[str] = []

    def dismiss(dialog) -> None:
        questions.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.click("form[data-confirm] button[type=submit]")
    page.wait_for_timeout(300)
    assert len(questions) == 1
    assert "Remove acme.example?" in questions[0]
    assert page.url.endswith("/t/acme/settings/sso/domains/")
    assert "acme.example" in page.content()

    assert errors == []
    assert violations == [], violations
    assert [text for text in console if "Content Security Policy" in text] == []
    assert headers
    for url, policy in headers.items():
        assert "'nonce-" in policy, url
        assert "frame-ancestors 'none'" in policy, url

    # From the attacker's side: markup that slipped into a page cannot run script.
    page.goto(f"{live_server.url}/t/acme/")
    page.evaluate(
        """() => {
            document.body.insertAdjacentHTML("beforeend", '<img src="/static/favicon.svg" onload="window.pwned = 1">');
            const script = document.createElement("script");
            script.textContent = "window.pwned = 2";
            document.body.appendChild(script);
        }"""
    )
    page.wait_for_timeout(500)
    assert page.evaluate("window.pwned") is None
    assert any("script-src" in violation for violation in violations), violations
    context.close()
