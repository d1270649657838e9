"""Demo plans and Acme's Stripe mirror (#12, item 1).

Three plans created by the demo staff member through ``plans.plan_save`` (audited on the
platform chain), and Acme's customer, subscription, payment method and two paid invoices
applied through the real webhook handlers with Stripe-shaped events, as if Stripe had
sent them (audited on Acme's chain). No Stripe key is needed: the billing page then says
Stripe is not configured. Idempotent: with the "Team" plan present, nothing is done.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.utils import timezone

from apps.accounts.models import User
from apps.billing import plans
from apps.billing.stripe_handlers import HANDLERS
from apps.platform.management import demo
from apps.tenants import selectors as tenant_selectors

PLANS = (
    ("Starter", "price_demo_starter_monthly", 500_000, "9.00", "150", "200"),
    ("Team", "price_demo_team_monthly", 2_000_000, "20.00", "400", "500"),
    ("Business", "price_demo_business_monthly", 10_000_000, "45.00", "2000", "2500"),
)
CUSTOMER = "cus_demo_acme"


def _event(event_type: str, obj: dict[str, Any], created: int) -> dict[str, Any]:
    return {
        "id": f"evt_demo_{uuid.uuid4().hex[:20]}",
        "object": "event",
        "type": event_type,
        "created": created,
        "data": {"object": obj},
    }


def seed_billing() -> list[str]:
    staff = User.objects.filter(email__iexact=demo.STAFF.email).first()
    acme = tenant_selectors.tenant_get(slug="acme")
    if staff is None or acme is None or plans.plan_list().filter(name="Team").exists():
        return []
    for name, price, tokens, seat, soft, hard in PLANS:
        plans.plan_save(
            plan=None,
            values={
                "name": name,
                "stripe_price_id": price,
                "included_tokens": tokens,
                "currency": "eur",
                "seat_price": Decimal(seat),
                "soft_limit": Decimal(soft),
                "hard_limit": Decimal(hard),
                "active": True,
            },
            by=staff,
        )
    now = timezone.now()
    start = int((now - timedelta(days=45)).timestamp())
    period_end = int((now + timedelta(days=15)).timestamp())
    steps = [
        ("checkout.session.completed", {"id": "cs_demo_acme", "object": "checkout.session", "customer": CUSTOMER,
                                        "client_reference_id": str(acme.pk), "mode": "subscription"}),
        ("customer.subscription.created", {
            "id": "sub_demo_acme", "object": "subscription", "customer": CUSTOMER, "status": "active",
            "cancel_at_period_end": False, "metadata": {"bastion_tenant": str(acme.pk)},
            "items": {"data": [{"id": "si_demo_acme", "quantity": 5, "current_period_end": period_end,
                                "price": {"id": "price_demo_team_monthly"}}]},
        }),
        ("customer.updated", {
            "id": CUSTOMER, "object": "customer", "email": "finance@acme.example",
            "invoice_settings": {"default_payment_method": {
                "id": "pm_demo_visa", "object": "payment_method", "type": "card",
                "card": {"brand": "visa", "last4": "4242", "exp_month": 8, "exp_year": 2028}}},
        }),
    ]  # fmt: skip
    for n, days_ago in ((1, 45), (2, 15)):
        issued = int((now - timedelta(days=days_ago)).timestamp())
        invoice = {
            "id": f"in_demo_acme_{n}",
            "object": "invoice",
            "customer": CUSTOMER,
            "number": f"ACME-DEMO-{n:04d}",
            "status": "open",
            "amount_due": 10000,
            "amount_paid": 0,
            "currency": "eur",
            "created": issued,
            "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_demo/in_demo_acme_{n}",
            "invoice_pdf": f"https://pay.stripe.com/invoice/acct_demo/in_demo_acme_{n}/pdf",
            "lines": {"data": [{"period": {"start": issued, "end": issued + 30 * 86400}}]},
        }
        steps.append(("invoice.finalized", invoice))
        steps.append(("invoice.paid", {**invoice, "status": "paid", "amount_paid": 10000}))
    for offset, (event_type, obj) in enumerate(steps):
        HANDLERS[event_type](_event(event_type, obj, start + offset))
    return [f"{len(PLANS)} billing plans; Acme on Team (5 seats) with two paid invoices"]
