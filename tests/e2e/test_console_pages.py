"""The console in a real browser: sign in, walk the main pages, keep screenshots.

Run with SCREENSHOT_DIR=docs/screenshots to refresh the pictures in the README.
"""

from __future__ import annotations

import pytest

from apps.access.services import builtin_roles_seed
from apps.audit.services import Actor, record
from apps.catalog.models import Dataset, Tool
from apps.tenants.models import Membership
from tests.accounts.helpers import enrol_totp, totp_code
from tests.e2e.helpers import shot
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
PASSWORD = "correct horse battery staple"


@pytest.fixture
def world():
    acme = TenantFactory(slug="acme", name="Acme Corp")
    builtin_roles_seed(tenant=acme)
    owner = UserFactory(email="owner@acme.example", full_name="Olivia Owner", is_staff=True)
    MembershipFactory(tenant=acme, user=owner, role=Membership.Role.OWNER)
    for index, role in enumerate(["admin", "developer", "analyst", "viewer"]):
        MembershipFactory(tenant=acme, user=UserFactory(email=f"{role}{index}@acme.example"), role=role)
    Dataset.objects.create(
        tenant=acme,
        name="support-tickets",
        classification="confidential",
        contains_personal_data=True,
        description="Customer support tickets, 2024 onwards",
    )
    Dataset.objects.create(tenant=acme, name="product-docs", classification="internal")
    Tool.objects.create(
        tenant=acme,
        name="web-search",
        allowlisted=True,
        risk_level="medium",
        args_schema={"type": "object", "properties": {"url": {"type": "string"}}, "required": ["url"]},
        egress_allowlist=["api.search.example"],
    )
    for action, result in [
        ("member.invite", "success"),
        ("auth.sign_in", "failure"),
        ("role.update", "success"),
        ("guardrail.tool_call", "denied"),
    ]:
        record(
            action,
            tenant=acme,
            actor=Actor.for_user(owner),
            target_type="membership",
            target_id=1,
            result=result,
            metadata={"note": "seeded for the browser test"},
        )
    acme.owner_totp_secret = enrol_totp(owner)
    globex = TenantFactory(slug="globex", name="Globex")
    MembershipFactory(tenant=globex, user=owner, role=Membership.Role.ADMIN)
    return acme


def test_sign_in_and_walk_the_console(world, live_server, browser, screenshot_dir) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{live_server.url}/accounts/login/")
    shot(page, screenshot_dir, "01-sign-in")
    page.fill("input[name=login]", "owner@acme.example")
    page.fill("input[name=password]", PASSWORD)
    page.click("form button[type=submit]")
    # Owners signing in with a password give their second factor (TOTP) next.
    page.wait_for_url("**/accounts/2fa/authenticate/")
    shot(page, screenshot_dir, "01b-second-factor")
    page.fill("input[name=code]", totp_code(world.owner_totp_secret))
    # Wait for the navigation the submit starts: wait_for_load_state() alone could return while the
    # old page was still current (seen once in CI as a flaky "/accounts/2fa/" URL).
    with page.expect_navigation():
        page.click("form button[type=submit]")
    assert "/accounts/login/" not in page.url
    assert "/accounts/2fa/" not in page.url

    pages = [
        ("02-dashboard", "/t/acme/", "Acme Corp"),
        ("03-members", "/t/acme/members/", "owner@acme.example"),
        ("04-audit-log", "/t/acme/audit/", "member.invite"),
        ("05-datasets", "/t/acme/catalog/datasets/", "support-tickets"),
        ("06-tools", "/t/acme/catalog/tools/", "web-search"),
        ("07-try-tool-call", "/t/acme/guardrails/try/", "Try a tool call"),
        ("08-platform-tenants", "/platform/", "Globex"),
        ("09-platform-audit", "/platform/audit/", "Platform audit log"),
        ("11-roles", "/t/acme/access/roles/", "Developer"),
        ("15-sso-settings", "/t/acme/settings/sso/", "Single sign-on"),
        ("16-sso-add-saml", "/t/acme/settings/sso/connections/new/saml/", "ACS"),
        ("17-sso-policy", "/t/acme/settings/sso/policy/", "idle"),
        ("18-platform-sso", "/platform/sso/", "SSO"),
        ("12-grants", "/t/acme/access/grants/", "support-tickets"),
        ("13-explain", "/t/acme/access/explain/", "Explain"),
        ("14-denied", "/t/acme/access/denied/", "Denied"),
    ]
    for name, path, expected in pages:
        response = page.goto(f"{live_server.url}{path}")
        assert response is not None, path
        assert response.status == 200, (path, response.status)
        content = page.content()
        if expected not in content:
            shot(page, screenshot_dir, name + "-FAILED")
            raise AssertionError((path, expected, content[-3000:]))
        shot(page, screenshot_dir, name)

    # htmx is loaded and the CSRF header is on <body>, so partial updates can post.
    assert page.evaluate("typeof window.htmx") == "object"
    assert "X-CSRFToken" in (page.get_attribute("body", "hx-headers") or "")

    # The tenant switcher lists both tenants.
    page.goto(f"{live_server.url}/t/acme/")
    page.click("details.switcher summary")
    assert page.is_visible("text=Globex")

    mobile = browser.new_context(viewport={"width": 390, "height": 844})
    mobile_page = mobile.new_page()
    mobile_page.context.add_cookies(context.cookies())
    mobile_page.goto(f"{live_server.url}/t/acme/audit/")
    shot(mobile_page, screenshot_dir, "10-audit-mobile")
    assert errors == []
    mobile.close()
    context.close()
