"""The demo seed's billing part: plans by staff, Acme's mirror applied through the real handlers."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.billing.models import Invoice, PaymentProfile, Plan, StripeCustomer, Subscription

pytestmark = pytest.mark.django_db


def test_seed_has_plans_and_acme_on_team(django_capture_on_commit_callbacks, client_for) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        call_command("seed_demo", stdout=StringIO())
    assert list(Plan.objects.order_by("seat_price").values_list("name", flat=True)) == ["Starter", "Team", "Business"]
    assert AuditEvent.objects.filter(action="billing.plan_create", tenant=None).count() == 3
    acme_customer = StripeCustomer.objects.get(customer_id="cus_demo_acme")
    sub = Subscription.objects.get(tenant=acme_customer.tenant)
    assert (sub.status, sub.quantity, sub.price_id) == ("active", 5, "price_demo_team_monthly")
    assert list(Invoice.objects.values_list("status", flat=True)) == ["paid", "paid"]
    assert PaymentProfile.objects.get().last4 == "4242"
    owner = acme_customer.tenant.memberships.get(role="owner").user
    html = client_for(owner).get("/t/acme/billing/").content.decode()
    assert "ACME-DEMO-0002" in html
    assert "Stripe is not configured" in html
    with django_capture_on_commit_callbacks(execute=False):
        call_command("seed_demo", stdout=StringIO())  # idempotent
    assert Plan.objects.count() == 3
    assert Invoice.objects.count() == 2
