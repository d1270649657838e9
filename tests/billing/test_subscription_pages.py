"""The tenant billing pages: permissions, Checkout and Portal sessions at a fake Stripe, no-key mode, invoices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.billing.models import Invoice, Plan, StripeCustomer, Subscription
from tests.billing.fake_stripe import fake_stripe_fixture  # noqa: F401 — the fake_stripe fixture
from tests.contract import PageContract, PermissionContract, Ref

OVERVIEW = "/t/acme/billing/"


def _plan(name: str = "Team", price: str = "price_team_1", **extra) -> Plan:
    return Plan.objects.create(
        name=name, stripe_price_id=price, included_tokens=1_000_000, seat_price=Decimal("20.00"), **extra
    )


def _invoice(tenant, n: int, *, issued: datetime | None = None, **extra) -> Invoice:
    values = {
        "customer_id": "cus_acme",
        "number": f"ACME-{n:04d}",
        "status": "paid",
        "amount_due": 2000 + n,
        "currency": "eur",
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_1/test_{n}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_1/test_{n}/pdf",
        "issued_at": issued or datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=n),
    }
    values.update(extra)
    return Invoice.objects.create(tenant=tenant, invoice_id=f"in_{tenant.slug}_{n}", **values)


@pytest.fixture
def world(cast):
    plan = _plan()
    return SimpleNamespace(
        cast=cast,
        plan=plan,
        retired=_plan("Legacy", "price_legacy_1", active=False),
        invoice=_invoice(cast.acme, 1),
        globex_invoice=_invoice(cast.globex, 1),
    )


class TestBillingPagesContract(PermissionContract):
    app_namespace = "billing_console"
    contracts = (
        PageContract("billing_console:overview", "billing.view"),
        PageContract("billing_console:invoice_list", "billing.view"),
        PageContract(
            "billing_console:invoice_detail",
            "billing.view",
            kwargs={"pk": Ref("invoice")},
            foreign=({"pk": Ref("globex_invoice")},),
        ),
        # No key in these runs: a holder is sent back to the page with a message (302), nothing at Stripe.
        PageContract(
            "billing_console:checkout",
            "billing.manage",
            kwargs={"plan_id": Ref("plan")},
            method="post",
            data={"seats": "3"},
            ok_status=302,
        ),
        PageContract("billing_console:portal", "billing.manage", method="post", ok_status=302),
    )

    @pytest.fixture
    def contract_world(self, world):
        return world

    def state(self, world):
        return (super().state(world), Subscription.objects.count(), StripeCustomer.objects.count())


# --- no key: the embedded default ---------------------------------------------------------------


def test_without_a_key_the_page_says_so_and_offers_no_stripe_action(world, client_for, settings) -> None:
    settings.STRIPE_SECRET_KEY = ""
    client = client_for(world.cast.owner)
    html = client.get(OVERVIEW).content.decode()
    assert "Stripe is not configured on this installation" in html
    assert "Team" in html  # plans are still listed
    assert "Subscribe at Stripe" not in html
    assert "Manage payment" not in html
    response = client.post(
        reverse("billing_console:checkout", kwargs={"tenant_slug": "acme", "plan_id": world.plan.pk}), {"seats": 2}
    )
    assert response.status_code == 302
    assert response["Location"] == OVERVIEW
    assert "no STRIPE_SECRET_KEY" in client.get(OVERVIEW).content.decode()
    assert not AuditEvent.objects.filter(action="billing.checkout_started").exists()


def test_without_a_key_the_dashboard_and_other_pages_still_work(world, client_for, settings) -> None:
    settings.STRIPE_SECRET_KEY = ""
    client = client_for(world.cast.owner)
    for url in ("/t/acme/", "/t/acme/members/", "/t/acme/billing/invoices/"):
        assert client.get(url).status_code == 200, url


# --- Checkout and Portal at the fake Stripe -----------------------------------------------------


def _checkout(client, plan, seats="3"):
    return client.post(
        reverse("billing_console:checkout", kwargs={"tenant_slug": "acme", "plan_id": plan.pk}), {"seats": seats}
    )


def test_first_plan_goes_to_checkout_with_tenant_price_and_idempotency_key(world, client_for, fake_stripe) -> None:
    response = _checkout(client_for(world.cast.owner), world.plan)
    [call] = fake_stripe.posts("/v1/checkout/sessions")
    assert response.status_code == 302
    assert response["Location"].startswith("https://checkout.stripe.com/c/pay/cs_test_")
    form = call.form
    tenant = str(world.cast.acme.pk)
    assert form["mode"] == "subscription"
    assert form["client_reference_id"] == tenant
    assert form["metadata[bastion_tenant]"] == tenant
    assert form["subscription_data[metadata][bastion_tenant]"] == tenant
    assert form["line_items[0][price]"] == "price_team_1"
    assert form["line_items[0][quantity]"] == "3"
    assert form["customer_email"] == "owner@acme.example"  # no Stripe customer yet
    assert "customer" not in form
    assert form["success_url"].endswith("/t/acme/billing/?checkout=success")
    assert call.headers["idempotency-key"].startswith("bastion-")
    assert call.headers["authorization"] == "Bearer sk_test_fake_0123456789"
    event = AuditEvent.objects.get(action="billing.checkout_started")
    assert event.tenant_id == world.cast.acme.pk
    assert event.metadata["seats"] == 3


def test_an_existing_customer_is_named_and_a_double_click_reuses_the_session(world, client_for, fake_stripe) -> None:
    StripeCustomer.objects.create(tenant=world.cast.acme, customer_id="cus_acme")
    client = client_for(world.cast.owner)
    first, second = _checkout(client, world.plan), _checkout(client, world.plan)
    calls = fake_stripe.posts("/v1/checkout/sessions")
    assert calls[0].form["customer"] == "cus_acme"
    assert "customer_email" not in calls[0].form
    assert calls[0].headers["idempotency-key"] == calls[1].headers["idempotency-key"]
    assert first["Location"] == second["Location"]  # Stripe answered the repeated key with the same session


def test_a_live_subscription_changes_plan_through_the_portal_confirmation(world, client_for, fake_stripe) -> None:
    StripeCustomer.objects.create(tenant=world.cast.acme, customer_id="cus_acme")
    Subscription.objects.create(
        tenant=world.cast.acme, subscription_id="sub_acme", customer_id="cus_acme", status="active", price_id="price_x"
    )
    response = _checkout(client_for(world.cast.owner), world.plan, seats="5")
    assert not fake_stripe.posts("/v1/checkout/sessions")  # never a second subscription
    assert [c.path for c in fake_stripe.calls if c.method == "GET"] == ["/v1/subscriptions/sub_acme"]
    [call] = fake_stripe.posts("/v1/billing_portal/sessions")
    form = call.form
    assert form["customer"] == "cus_acme"
    assert form["flow_data[type]"] == "subscription_update_confirm"
    assert form["flow_data[subscription_update_confirm][subscription]"] == "sub_acme"
    assert form["flow_data[subscription_update_confirm][items][0][id]"] == "si_fake_item_1"
    assert form["flow_data[subscription_update_confirm][items][0][price]"] == "price_team_1"
    assert form["flow_data[subscription_update_confirm][items][0][quantity]"] == "5"
    assert response["Location"].startswith("https://billing.stripe.com/p/session/")


def test_manage_payment_opens_the_portal_for_the_tenants_customer(world, client_for, fake_stripe) -> None:
    StripeCustomer.objects.create(tenant=world.cast.acme, customer_id="cus_acme")
    StripeCustomer.objects.create(tenant=world.cast.globex, customer_id="cus_globex")
    response = client_for(world.cast.owner).post(reverse("billing_console:portal", kwargs={"tenant_slug": "acme"}))
    [call] = fake_stripe.posts("/v1/billing_portal/sessions")
    assert call.form["customer"] == "cus_acme"
    assert call.form["return_url"].endswith("/t/acme/billing/")
    assert call.headers["idempotency-key"]
    assert response.status_code == 302
    assert response["Location"].startswith("https://billing.stripe.com/")
    assert AuditEvent.objects.filter(action="billing.portal_opened", tenant=world.cast.acme).count() == 1


def test_portal_without_a_customer_says_choose_a_plan_first(world, client_for, fake_stripe) -> None:
    client = client_for(world.cast.owner)
    response = client.post(reverse("billing_console:portal", kwargs={"tenant_slug": "acme"}), follow=True)
    assert "choose a plan first" in response.content.decode()
    assert fake_stripe.calls == []


def test_a_stripe_error_is_a_message_not_a_500(world, client_for, fake_stripe) -> None:
    fake_stripe.fail_next = (
        400,
        {"error": {"type": "invalid_request_error", "code": "resource_missing", "message": "No such price"}},
    )
    client = client_for(world.cast.owner)
    response = _checkout(client, world.plan)
    assert response.status_code == 302
    assert response["Location"] == OVERVIEW
    page = client.get(OVERVIEW).content.decode()
    assert "Could not start Stripe Checkout: No such price." in page
    assert not AuditEvent.objects.filter(action="billing.checkout_started").exists()


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example/c/pay/cs_1",
        "http://checkout.stripe.com/c/pay/cs_1",
        "https://checkout.stripe.com.evil.example/x",
    ],
)
def test_a_session_url_off_stripe_is_never_followed(world, client_for, fake_stripe, url) -> None:
    fake_stripe.session_url = url
    client = client_for(world.cast.owner)
    response = _checkout(client, world.plan)
    assert response["Location"] == OVERVIEW
    assert "without a valid session link" in client.get(OVERVIEW).content.decode()
    assert not AuditEvent.objects.filter(action="billing.checkout_started").exists()


@pytest.mark.parametrize("seats", ["0", "-1", "abc", "10001", ""])
def test_bad_seat_counts_are_refused_before_stripe(world, client_for, fake_stripe, seats) -> None:
    response = _checkout(client_for(world.cast.owner), world.plan, seats=seats)
    assert response.status_code == 302
    assert fake_stripe.calls == []


def test_a_withdrawn_or_unknown_plan_is_404(world, client_for, fake_stripe) -> None:
    client = client_for(world.cast.owner)
    assert _checkout(client, world.retired).status_code == 404
    url = reverse("billing_console:checkout", kwargs={"tenant_slug": "acme", "plan_id": 999999})
    assert client.post(url, {"seats": 1}).status_code == 404
    assert fake_stripe.calls == []


def test_billing_view_sees_the_page_without_the_actions(world, client_for, fake_stripe) -> None:
    StripeCustomer.objects.create(tenant=world.cast.acme, customer_id="cus_acme")
    html = client_for(world.cast.admin).get(OVERVIEW).content.decode()  # admin: billing.view, not manage
    assert "Only members who may manage billing can change the plan" in html
    assert "Manage payment" not in html
    assert "Subscribe at Stripe" not in html
    owner_html = client_for(world.cast.owner).get(OVERVIEW).content.decode()
    assert "Manage payment" in owner_html
    assert "Subscribe at Stripe" in owner_html
    assert _checkout(client_for(world.cast.admin), world.plan).status_code == 403
    assert fake_stripe.calls == []


def test_the_page_shows_the_subscription_mirror(world, client_for) -> None:
    Subscription.objects.create(
        tenant=world.cast.acme,
        subscription_id="sub_acme",
        customer_id="cus_acme",
        status="active",
        price_id="price_team_1",
        quantity=7,
        current_period_end=datetime(2026, 2, 1, tzinfo=UTC),
        cancel_at_period_end=True,
    )
    html = client_for(world.cast.admin).get(OVERVIEW).content.decode()
    assert "Team" in html
    assert ">7<" in html
    assert "1 Feb 2026" in html
    assert "Ends at period end (cancelled)" in html


# --- invoices -----------------------------------------------------------------------------------


def test_invoices_are_paginated_newest_first_with_links(world, client_for) -> None:
    for n in range(2, 26):
        _invoice(world.cast.acme, n)
    client = client_for(world.cast.admin)
    first = client.get("/t/acme/billing/invoices/")
    html = first.content.decode()
    assert "ACME-0025" in html
    assert "ACME-0006" in html
    assert "ACME-0005" not in html
    assert "https://invoice.stripe.com/i/acct_1/test_25" in html
    assert "/pdf" in html
    cursor = first.context["page"].next_cursor
    second = client.get("/t/acme/billing/invoices/", {"cursor": cursor}).content.decode()
    assert "ACME-0005" in second
    assert "ACME-0001" in second
    assert "ACME-0006" not in second
    assert "in_globex_1" not in html + second


def test_a_bad_cursor_says_so(world, client_for) -> None:
    response = client_for(world.cast.admin).get("/t/acme/billing/invoices/", {"cursor": "not-a-cursor!!"})
    assert response.status_code == 200
    assert "That page link is not valid" in response.content.decode()


def test_the_invoice_list_costs_the_same_queries_for_more_rows(world, client_for) -> None:
    client = client_for(world.cast.admin)
    client.get("/t/acme/billing/invoices/")

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get("/t/acme/billing/invoices/").status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for n in range(2, 20):
        _invoice(world.cast.acme, n)
    assert count() == few


def test_another_tenants_invoice_is_404_and_not_shown(world, client_for) -> None:
    url = reverse("billing_console:invoice_detail", kwargs={"tenant_slug": "acme", "pk": world.globex_invoice.pk})
    response = client_for(world.cast.owner).get(url)
    assert response.status_code == 404
    assert "in_globex_1" not in response.content.decode()


def test_the_nav_has_billing_for_billing_view_only(world, client_for) -> None:
    assert 'href="/t/acme/billing/"' in client_for(world.cast.admin).get("/t/acme/").content.decode()
    assert 'href="/t/acme/billing/"' not in client_for(world.cast.member).get("/t/acme/").content.decode()
