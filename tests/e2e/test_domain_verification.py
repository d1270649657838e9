"""Claiming an e-mail domain in a real browser: claim → TXT record published → Check now → verified.

The DNS side is a real DNS server on loopback (``tests.sso.dns_server``); the
admin walks the SSO "Verified domains" page as they would. Screenshots go to
SCREENSHOT_DIR (e.g. docs/screenshots) when set.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from apps.sso.models import VerifiedDomain
from apps.sso.services import domains as domain_services
from apps.tenants.models import Membership
from tests.e2e.helpers import shot, signed_in_context
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.sso.dns_server import LocalDNS

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dns_server(settings) -> LocalDNS:
    server = LocalDNS()
    server.start()
    settings.SSO_DNS_NAMESERVER = "127.0.0.1"
    settings.SSO_DNS_PORT = server.port
    settings.SSO_DNS_TIMEOUT = 1.0
    yield server
    server.stop()


def test_claim_publish_check_verified(live_server, browser, screenshot_dir, dns_server: LocalDNS, monkeypatch) -> None:
    # The browser clicks "Check now" twice within seconds; the 30-second limit has its own test.
    monkeypatch.setattr(domain_services, "CHECK_MIN_INTERVAL", timedelta(0))
    acme = TenantFactory(slug="acme", name="Acme Corp")
    admin = UserFactory(email="ada@acme-corp.test", full_name="Ada Admin")
    MembershipFactory(tenant=acme, user=admin, role=Membership.Role.ADMIN)
    context = signed_in_context(browser, live_server, admin)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto(f"{live_server.url}/t/acme/settings/sso/domains/")
    page.fill("input[name=domain]", "acme-corp.test")
    page.click("text=Claim domain")
    page.wait_for_load_state()
    assert "Publish the TXT record" in page.content()
    claim = VerifiedDomain.objects.get(domain="acme-corp.test")
    assert page.is_visible(f"text=bastion-verify={claim.dns_token}")
    shot(page, screenshot_dir, "20-domain-claimed")

    # Checked before the record exists: told so, still pending.
    page.click(f"#domain-{claim.pk} >> text=Check now")
    page.wait_for_load_state()
    assert "does not exist in DNS" in page.content()
    shot(page, screenshot_dir, "21-domain-check-not-yet")

    # The admin publishes the record at their DNS provider (here: the loopback server) and checks again.
    dns_server.txt("acme-corp.test", "v=spf1 -all", f"bastion-verify={claim.dns_token}")
    page.click(f"#domain-{claim.pk} >> text=Check now")
    page.wait_for_load_state()
    content = page.content()
    assert "acme-corp.test is verified" in content
    assert page.is_visible(f"#domain-{claim.pk} >> text=Verified")
    assert not page.is_visible(f"#domain-{claim.pk} >> text=Check now")
    shot(page, screenshot_dir, "22-domain-verified")

    claim.refresh_from_db()
    assert claim.verified_method == "dns"
    assert errors == []
    context.close()
