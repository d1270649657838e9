"""Handlers behind the signed webhook: invoice mirror, customer.updated, out-of-order delivery, tenant checks.

Every event goes the real way: signed with the SDK's header generator, POSTed to the
webhook, stored, and processed by the task (run inline here, after commit).
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from apps.audit.models import AuditEvent
from apps.billing.models import DunningCase, Invoice, PaymentProfile, StripeCustomer, Subscription, WebhookEvent
from tests.billing.conftest import deliver, event, invoice, resource, subscription
from tests.billing.fake_stripe import card, fake_stripe_fixture  # noqa: F401 — the fake_stripe fixture

NOW = int(time.time())


@pytest.fixture
def send(db, django_capture_on_commit_callbacks):
    client = Client()

    def apply(payload: dict[str, Any]) -> WebhookEvent:
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload).status_code == 200
        return WebhookEvent.objects.get(event_id=payload["id"])

    return apply


@pytest.fixture
def acme_customer(cast) -> StripeCustomer:
    return StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")


def finalized_invoice(customer: str = "cus_acme", *, invoice_id: str = "in_acme_1", **extra: Any) -> dict:
    obj = invoice(customer, invoice_id=invoice_id)
    obj.update(
        status="open",
        number="ACME-0001",
        amount_due=4900,
        currency="eur",
        created=NOW - 3600,
        hosted_invoice_url="https://invoice.stripe.com/i/acct_1/test_acme_1",
        invoice_pdf="https://pay.stripe.com/invoice/acct_1/test_acme_1/pdf",
    )
    obj["lines"]["data"][0]["period"] = {"start": NOW - 30 * 86400, "end": NOW}
    obj.update(extra)
    return obj


def test_invoice_finalized_creates_the_mirror_row(cast, acme_customer, send) -> None:
    row = send(event("invoice.finalized", finalized_invoice(), created=NOW))
    assert row.status == "done", row.last_error
    assert row.tenant_id == cast.acme.pk
    mirror = Invoice.objects.get()
    assert mirror.tenant_id == cast.acme.pk
    assert (mirror.number, mirror.status, mirror.amount_due, mirror.currency) == ("ACME-0001", "open", 4900, "eur")
    assert mirror.hosted_invoice_url == "https://invoice.stripe.com/i/acct_1/test_acme_1"
    assert mirror.invoice_pdf.endswith("/pdf")
    assert int(mirror.period_start.timestamp()) == NOW - 30 * 86400
    assert int(mirror.period_end.timestamp()) == NOW
    assert int(mirror.issued_at.timestamp()) == NOW - 3600
    assert mirror.payment_failed is False


def test_a_replayed_finalized_event_changes_nothing(cast, acme_customer, send) -> None:
    payload = event("invoice.finalized", finalized_invoice(), created=NOW)
    send(payload)
    send(payload)  # a duplicate delivery: stored once, applied once
    assert Invoice.objects.count() == 1
    assert WebhookEvent.objects.count() == 1


def test_links_that_are_not_https_are_not_kept(cast, acme_customer, send) -> None:
    send(
        event(
            "invoice.finalized",
            finalized_invoice(hosted_invoice_url="javascript:alert(1)", invoice_pdf="http://example.com/x.pdf"),
            created=NOW,
        )
    )
    mirror = Invoice.objects.get()
    assert mirror.hosted_invoice_url == ""
    assert mirror.invoice_pdf == ""


def test_paid_after_payment_failed_ends_paid_and_closes_dunning(cast, acme_customer, send) -> None:
    send(event("invoice.finalized", finalized_invoice(), created=NOW - 20))
    send(event("invoice.payment_failed", finalized_invoice(attempt_count=1), created=NOW - 10))
    mirror = Invoice.objects.get()
    assert (mirror.status, mirror.payment_failed) == ("open", True)
    assert DunningCase.objects.get().resolved_at is None
    send(event("invoice.paid", finalized_invoice(status="paid", amount_paid=4900), created=NOW))
    mirror.refresh_from_db()
    assert (mirror.status, mirror.payment_failed, mirror.amount_paid) == ("paid", False, 4900)
    assert DunningCase.objects.get().resolved_at is not None


def test_an_older_payment_failed_delivered_after_paid_changes_nothing(cast, acme_customer, send) -> None:
    send(event("invoice.paid", finalized_invoice(status="paid", amount_paid=4900), created=NOW))
    late = send(event("invoice.payment_failed", finalized_invoice(attempt_count=1), created=NOW - 60))
    assert late.status == "done"
    mirror = Invoice.objects.get()
    assert (mirror.status, mirror.payment_failed) == ("paid", False)
    assert not DunningCase.objects.exists()  # no banner, no e-mail, no suspension for a paid invoice
    assert StripeCustomer.objects.get().delinquent is False


def test_paid_and_failed_in_the_same_second_end_paid_whatever_the_order(cast, acme_customer, send) -> None:
    send(event("invoice.paid", finalized_invoice(status="paid"), created=NOW))
    send(event("invoice.payment_failed", finalized_invoice(), created=NOW))
    assert Invoice.objects.get().status == "paid"
    assert not DunningCase.objects.exists()


def test_an_older_finalized_event_does_not_reopen_a_paid_invoice(cast, acme_customer, send) -> None:
    send(event("invoice.paid", finalized_invoice(status="paid"), created=NOW))
    send(event("invoice.finalized", finalized_invoice(number="OLD-NUMBER"), created=NOW - 100))
    mirror = Invoice.objects.get()
    assert mirror.status == "paid"
    assert mirror.number == "ACME-0001"


def test_subscription_updated_before_created_keeps_the_newer_state(cast, acme_customer, send) -> None:
    updated = event("customer.subscription.updated", subscription("cus_acme", status="active", quantity=9), created=NOW)
    created = event(
        "customer.subscription.created", subscription("cus_acme", status="incomplete", quantity=1), created=NOW - 5
    )
    send(updated)
    send(created)
    sub = Subscription.objects.get()
    assert (sub.status, sub.quantity, sub.tenant_id) == ("active", 9, cast.acme.pk)


def test_an_invoice_event_naming_another_tenant_is_refused_and_audited(cast, acme_customer, send) -> None:
    forged = finalized_invoice(metadata={"bastion_tenant": str(cast.globex.pk)})
    row = send(event("invoice.payment_failed", forged, created=NOW))
    assert row.status == "refused"
    assert not Invoice.objects.exists()
    assert not DunningCase.objects.exists()
    refusal = AuditEvent.objects.get(action="billing.webhook_refused")
    assert refusal.tenant_id == cast.acme.pk
    assert refusal.metadata["claimed_tenant"] == str(cast.globex.pk)


def test_an_invoice_id_already_mirrored_for_another_tenant_is_refused(cast, acme_customer, send) -> None:
    StripeCustomer.objects.create(tenant=cast.globex, customer_id="cus_globex")
    send(event("invoice.finalized", finalized_invoice("cus_globex", invoice_id="in_shared"), created=NOW - 10))
    row = send(event("invoice.paid", finalized_invoice("cus_acme", invoice_id="in_shared"), created=NOW))
    assert row.status == "refused"
    mirror = Invoice.objects.get()
    assert (mirror.tenant_id, mirror.status) == (cast.globex.pk, "open")


# --- customer.updated ------------------------------------------------------------------------


def customer(customer_id: str = "cus_acme", **extra: Any) -> dict:
    obj = resource("customer")
    obj.update({"id": customer_id, "email": "billing@acme.example", **extra})
    return obj


def test_customer_updated_with_an_expanded_card_stores_the_summary(cast, acme_customer, send) -> None:
    method = card("pm_card_visa", brand="visa", last4="4242", exp=(8, 2031))
    obj = customer(invoice_settings={"default_payment_method": method})
    row = send(event("customer.updated", obj, created=NOW))
    assert row.status == "done", row.last_error
    profile = PaymentProfile.objects.get()
    assert (profile.tenant_id, profile.email) == (cast.acme.pk, "billing@acme.example")
    assert (profile.brand, profile.last4, profile.exp_month, profile.exp_year) == ("visa", "4242", 8, 2031)
    audit = AuditEvent.objects.get(action="billing.customer_updated")
    assert audit.metadata["payment_method"] == "visa 4242"


def test_customer_updated_naming_a_method_reads_it_from_stripe(cast, acme_customer, send, fake_stripe) -> None:
    fake_stripe.payment_methods["pm_sepa"] = {
        "id": "pm_sepa",
        "object": "payment_method",
        "type": "sepa_debit",
        "sepa_debit": {"last4": "3000", "bank_code": "37040044", "country": "DE"},
    }
    send(event("customer.updated", customer(invoice_settings={"default_payment_method": "pm_sepa"}), created=NOW))
    assert [c.path for c in fake_stripe.calls] == ["/v1/payment_methods/pm_sepa"]
    profile = PaymentProfile.objects.get()
    assert (profile.brand, profile.last4, profile.payment_method_id) == ("sepa_debit", "3000", "pm_sepa")


def test_customer_updated_is_retried_while_stripe_cannot_say(cast, acme_customer, send, fake_stripe) -> None:
    fake_stripe.fail_next = (400, {"error": {"type": "invalid_request_error", "message": "No such PaymentMethod"}})
    row = send(event("customer.updated", customer(invoice_settings={"default_payment_method": "pm_x"}), created=NOW))
    assert row.status == "failed"
    assert "StripeUnavailableError" in row.last_error
    assert not PaymentProfile.objects.exists()


def test_an_older_customer_snapshot_does_not_overwrite(cast, acme_customer, send) -> None:
    new = customer(email="new@acme.example", invoice_settings={"default_payment_method": card("pm_new", last4="1111")})
    old = customer(email="old@acme.example", invoice_settings={"default_payment_method": card("pm_old", last4="9999")})
    send(event("customer.updated", new, created=NOW))
    send(event("customer.updated", old, created=NOW - 30))
    profile = PaymentProfile.objects.get()
    assert (profile.email, profile.last4) == ("new@acme.example", "1111")


def test_a_customer_that_is_not_ours_is_ignored(cast, send) -> None:
    row = send(event("customer.updated", customer("cus_someone_else"), created=NOW))
    assert row.status == "done"
    assert row.tenant_id is None
    assert not PaymentProfile.objects.exists()


def test_customer_updated_claiming_another_tenant_is_refused(cast, acme_customer, send) -> None:
    forged = customer(metadata={"bastion_tenant": str(cast.globex.pk)})
    row = send(event("customer.updated", forged, created=NOW))
    assert row.status == "refused"
    assert not PaymentProfile.objects.exists()
    assert AuditEvent.objects.filter(action="billing.webhook_refused", tenant=cast.acme).exists()


def test_the_billing_page_shows_the_mirrored_invoice_and_card(cast, acme_customer, send, client_for) -> None:
    send(event("invoice.finalized", finalized_invoice(), created=NOW))
    send(event("customer.updated", customer(invoice_settings={"default_payment_method": card("pm_1")}), created=NOW))
    html = client_for(cast.owner).get("/t/acme/billing/").content.decode()
    assert "ACME-0001" in html
    assert "49.00 EUR" in html
    assert "Visa</strong> ending in 4242" in html
    assert "https://invoice.stripe.com/i/acct_1/test_acme_1" in html
