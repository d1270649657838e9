"""Inviting an admin who could never sign in, walked in a real browser (#9, item 5).

Acme's SSO works (an enabled connection, acme-corp.test verified). Its owner
invites an address outside that domain as an Admin: the form warns, says what
the person would need, and sends nothing; "Invite anyway" then invites them.
Run with SCREENSHOT_DIR=… to keep the pictures.
"""

from __future__ import annotations

import pytest
from django.utils import timezone

from apps.access.services import builtin_roles_seed
from apps.sso.models import VerifiedDomain
from apps.tenants.models import Membership
from tests.e2e.helpers import shot, signed_in_context
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.sso.test_flow_support import saml_connection

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

INVITE = "/t/acme/members/invite/"
OUTSIDER = "chris@contractor-mail.test"


def _invited(email: str) -> bool:
    return Membership.objects.filter(user__email=email, status=Membership.Status.INVITED).exists()


def test_admin_invite_outside_verified_domains_warns_then_invites_anyway(live_server, browser, screenshot_dir) -> None:
    acme = TenantFactory(slug="acme", name="Acme Corp")
    builtin_roles_seed(tenant=acme)
    owner = UserFactory(email="olivia@acme-corp.test", full_name="Olivia Owner")
    MembershipFactory(tenant=acme, user=owner, role=Membership.Role.OWNER)
    VerifiedDomain.objects.create(tenant=acme, domain="acme-corp.test", dns_token="t" * 32, verified_at=timezone.now())
    connection = saml_connection(acme)
    connection.name = "Acme Okta"
    connection.save(update_fields=["name"])
    context = signed_in_context(browser, live_server, owner)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{live_server.url}{INVITE}")
    assert not page.is_visible("#invite-sign-in-warning")
    page.fill("input[name=email]", OUTSIDER)
    page.select_option("select[name=role]", "admin")
    shot(page, screenshot_dir, "30-invite-admin-filled")
    page.click("form button[type=submit]")
    page.wait_for_load_state()

    # Warned, with what the person needs; nothing sent yet.
    warning = page.inner_text("#invite-sign-in-warning")
    assert f"{OUTSIDER} could not sign in" in warning
    assert "Acme Okta" in warning
    assert "acme-corp.test" in warning
    assert "They need an account at Acme Okta" in warning
    assert not _invited(OUTSIDER)
    shot(page, screenshot_dir, "31-invite-admin-warned")

    # "Invite anyway" sends it.
    page.click("#invite-sign-in-warning >> button:has-text('Invite anyway')")
    page.wait_for_load_state()
    assert page.url.endswith("/t/acme/members/"), page.url
    assert f"Invitation sent to {OUTSIDER}" in page.content()
    assert _invited(OUTSIDER)
    assert Membership.objects.get(user__email=OUTSIDER).role == Membership.Role.ADMIN
    shot(page, screenshot_dir, "32-invite-admin-sent")
    assert errors == []
    context.close()
