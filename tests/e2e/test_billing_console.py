"""Billing in a real browser (#12, item 1): the tenant's billing page with the failed-payment banner,
"Switch at Stripe" reaching Stripe (the loopback fake answers the API; Stripe's page is stubbed in the
browser), the dashboard card, and the staff's plan and failed-payment pages.

Run with SCREENSHOT_DIR=… to keep the pictures.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.billing import dunning
from apps.billing.models import DunningCase, Invoice, PaymentProfile, Plan, StripeCustomer, Subscription
from apps.tenants.models import Membership
from tests.billing.fake_stripe import fake_stripe_fixture  # noqa: F401 — the fake_stripe fixture
from tests.e2e.helpers import shot, signed_in_context
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _world():
    acme = TenantFactory(slug="acme", name="Acme Corp")
    owner = UserFactory(email="olivia@acme.example", full_name="Olivia Owner")
    MembershipFactory(tenant=acme, user=owner, role=Membership.Role.OWNER)
    staff = UserFactory(email="staff@bastion.example", is_staff=True)
    team = Plan.objects.create(
        name="Team",
        stripe_price_id="price_team_monthly",
        included_tokens=2_000_000,
        seat_price=Decimal("20.00"),
        soft_limit=Decimal("400"),
        hard_limit=Decimal("500"),
    )
    Plan.objects.create(
        name="Business",
        stripe_price_id="price_business_monthly",
        included_tokens=10_000_000,
        seat_price=Decimal("45.00"),
        soft_limit=Decimal("2000"),
        hard_limit=Decimal("2500"),
    )
    Plan.objects.create(name="Legacy", stripe_price_id="price_legacy", seat_price=Decimal("9.00"), active=False)
    StripeCustomer.objects.create(tenant=acme, customer_id="cus_acme_demo")
    now = timezone.now()
    Subscription.objects.create(
        tenant=acme,
        subscription_id="sub_acme_demo",
        customer_id="cus_acme_demo",
        status="past_due",
        price_id=team.stripe_price_id,
        quantity=7,
        current_period_end=now + timedelta(days=21),
    )
    PaymentProfile.objects.create(
        tenant=acme,
        customer_id="cus_acme_demo",
        email="finance@acme.example",
        payment_method_id="pm_demo",
        brand="visa",
        last4="4242",
        exp_month=8,
        exp_year=2027,
    )
    for n, status in ((1, "paid"), (2, "paid"), (3, "open")):
        issued = datetime(2026, 9 + n, 1, tzinfo=UTC)
        Invoice.objects.create(
            tenant=acme,
            invoice_id=f"in_acme_{n}",
            customer_id="cus_acme_demo",
            number=f"ACME-000{n}",
            status=status,
            payment_failed=status == "open",
            amount_due=14000,
            amount_paid=14000 if status == "paid" else 0,
            currency="eur",
            hosted_invoice_url=f"https://invoice.stripe.com/i/acct_demo/test_{n}",
            invoice_pdf=f"https://pay.stripe.com/invoice/acct_demo/test_{n}/pdf",
            period_start=issued,
            period_end=issued + timedelta(days=30),
            issued_at=issued,
        )
    DunningCase.objects.create(
        tenant=acme, invoice_id="in_acme_3", opened_at=now - timedelta(days=3), grace_until=now + timedelta(days=11)
    )
    return owner, staff


def test_billing_pages_in_the_browser(live_server, browser, screenshot_dir, fake_stripe) -> None:
    owner, staff = _world()
    errors: list[str] = []
    page = signed_in_context(browser, live_server, owner).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    # Stripe's own pages are not reachable from the test machine: answer them in the browser.
    page.route(
        re.compile(r"https://(billing|checkout)\.stripe\.com/.*"),
        lambda route: route.fulfill(status=200, content_type="text/html", body="<h1>Stripe (stand-in)</h1>"),
    )

    page.goto(f"{live_server.url}/t/acme/billing/")
    expect(page.locator(".banner-dunning")).to_contain_text("Payment failed.")
    expect(page.get_by_role("heading", name="Payment failed")).to_be_visible()
    expect(page.get_by_text("Visa ending in 4242")).to_be_visible()
    expect(page.get_by_role("link", name="ACME-0003")).to_be_visible()
    expect(page.get_by_role("cell", name="Legacy")).to_have_count(0)
    shot(page, screenshot_dir, "billsubs-01-tenant-billing")

    page.goto(f"{live_server.url}/t/acme/")
    expect(page.locator("#card-billing-title")).to_be_visible()
    expect(page.locator(".banner-dunning")).to_be_visible()
    shot(page, screenshot_dir, "billsubs-02-dunning-banner-dashboard")

    # Change plan: the live subscription goes to Stripe's confirmation page for the new price.
    page.goto(f"{live_server.url}/t/acme/billing/")
    row = page.get_by_role("row").filter(has_text="Business")
    row.get_by_label("Seats for Business").fill("9")
    row.get_by_role("button", name="Switch at Stripe").click()
    page.wait_for_url(re.compile(r"https://billing\.stripe\.com/p/session/"))
    [call] = fake_stripe.posts("/v1/billing_portal/sessions")
    assert call.form["flow_data[subscription_update_confirm][items][0][price]"] == "price_business_monthly"
    assert call.form["flow_data[subscription_update_confirm][items][0][quantity]"] == "9"

    staff_page = signed_in_context(browser, live_server, staff).new_page()
    staff_page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    staff_page.goto(f"{live_server.url}/platform/billing/plans/")
    expect(staff_page.get_by_role("cell", name="Business", exact=True)).to_be_visible()
    expect(staff_page.get_by_text("Withdrawn")).to_be_visible()
    shot(staff_page, screenshot_dir, "billsubs-03-platform-plans")
    staff_page.get_by_role("link", name="New plan").click()
    expect(staff_page.get_by_label("Stripe price id")).to_be_visible()
    shot(staff_page, screenshot_dir, "billsubs-04-platform-plan-form")
    staff_page.goto(f"{live_server.url}/platform/billing/dunning/")
    expect(staff_page.get_by_role("link", name="Extend grace")).to_be_visible()
    shot(staff_page, screenshot_dir, "billsubs-05-platform-failed-payments")

    # Past the grace the daily run makes the tenant read-only; staff give more time, which lifts it.
    DunningCase.objects.update(grace_until=timezone.now() - timedelta(hours=1))
    assert dunning.dunning_enforce() == 1
    page.goto(f"{live_server.url}/t/acme/billing/")
    expect(page.get_by_text("This tenant is suspended for non-payment.")).to_be_visible()
    expect(page.locator(".banner-dunning")).to_have_count(0)  # one banner says it all
    expect(page.get_by_role("button", name="Manage payment")).to_have_count(0)
    expect(page.get_by_role("link", name="Pay the invoice at Stripe")).to_be_visible()
    shot(page, screenshot_dir, "billsubs-06-suspended-for-non-payment")
    staff_page.goto(f"{live_server.url}/platform/billing/dunning/")
    staff_page.get_by_role("link", name="Extend grace").click()
    staff_page.get_by_label("Days").fill("7")
    staff_page.get_by_label("Reason").fill("Bank transfer announced, ticket 4711")
    shot(staff_page, screenshot_dir, "billsubs-07-platform-extend-grace")
    staff_page.get_by_role("button", name="Extend grace").click()
    expect(staff_page.get_by_text("Grace of Acme Corp extended by 7 days")).to_be_visible()
    page.goto(f"{live_server.url}/t/acme/billing/")
    expect(page.get_by_role("button", name="Manage payment")).to_be_visible()
    assert errors == []
