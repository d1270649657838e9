"""Stripe event handlers: each applies one event type and returns the tenant id it applied to.

Called by ``services.webhook_process`` inside the transaction that marks the inbox row done,
so each must be idempotent and order-safe (an older event never overwrites newer state).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apps.audit.services import Actor, record
from apps.billing import dunning, plan_budgets, stripe_api
from apps.billing.errors import BillingError, TenantMismatchError
from apps.billing.models import Invoice, PaymentProfile, StripeCustomer, Subscription
from apps.tenants.models import Tenant


def _customer_id(obj: dict[str, Any]) -> str | None:
    customer = obj.get("customer")
    if isinstance(customer, dict):
        customer = customer.get("id")
    return customer if isinstance(customer, str) and customer else None


def _claimed_tenant(obj: dict[str, Any]) -> str | None:
    """The tenant the object names (set by us when creating it): client_reference_id or metadata."""
    claimed = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("bastion_tenant")
    return str(claimed) if claimed else None


def _tenant_for(obj: dict[str, Any], event: dict[str, Any]) -> StripeCustomer:
    """The tenant from the customer mapping; a conflicting claim in the object is refused."""
    customer_id = _customer_id(obj)
    if customer_id is None:
        raise BillingError("event object names no customer")
    mapping = StripeCustomer.objects.select_for_update().filter(customer_id=customer_id).first()
    if mapping is None:
        # Possibly the checkout event that creates the mapping has not arrived yet: retry later.
        raise BillingError(f"unknown customer {customer_id}")
    claimed = _claimed_tenant(obj)
    if claimed is not None and claimed != str(mapping.tenant_id):
        _refuse(event=event, claimed=claimed, owner_id=mapping.tenant_id, customer_id=customer_id)
    return mapping


def _refuse(*, event: dict[str, Any], claimed: str, owner_id: int | None, customer_id: str) -> None:
    raise TenantMismatchError(
        f"event {event.get('id')} names tenant {claimed}; customer {customer_id} belongs to another tenant",
        owner_id=owner_id,
        claimed=claimed,
        customer_id=customer_id,
    )


def _checkout_completed(event: dict[str, Any]) -> int:
    obj = event["data"]["object"]
    customer_id = _customer_id(obj)
    claimed = obj.get("client_reference_id")
    if customer_id is None or not claimed:
        raise BillingError("checkout session without customer or client_reference_id")
    tenant = Tenant.objects.filter(pk=int(claimed) if str(claimed).isdigit() else None).first()
    if tenant is None:
        raise TenantMismatchError(f"checkout session names unknown tenant {claimed}")
    existing = StripeCustomer.objects.select_for_update().filter(customer_id=customer_id).first()
    if existing is not None and existing.tenant_id != tenant.pk:
        _refuse(event=event, claimed=str(claimed), owner_id=existing.tenant_id, customer_id=customer_id)
    if existing is None:
        if StripeCustomer.objects.filter(tenant=tenant).exists():
            raise TenantMismatchError(f"tenant {tenant.pk} already has another Stripe customer")
        StripeCustomer.objects.create(tenant=tenant, customer_id=customer_id)
        record(
            "billing.customer_linked",
            tenant=tenant,
            actor=Actor.system("stripe webhook"),
            target_type="stripe_customer",
            target_id=customer_id,
            metadata={"event_id": event["id"], "checkout_session": obj.get("id")},
        )
    return tenant.pk


def _period_end(obj: dict[str, Any]) -> datetime | None:
    # Current API: the period lives on the items; older versions had it on the subscription.
    end = obj.get("current_period_end")
    items = (obj.get("items") or {}).get("data") or []
    if end is None and items:
        end = items[0].get("current_period_end")
    return datetime.fromtimestamp(end, tz=UTC) if isinstance(end, int) else None


def _subscription_changed(event: dict[str, Any]) -> int:
    obj = event["data"]["object"]
    mapping = _tenant_for(obj, event)
    created = int(event["created"])
    items = (obj.get("items") or {}).get("data") or []
    first = items[0] if items else {}
    status = "canceled" if event["type"] == "customer.subscription.deleted" else str(obj.get("status") or "")
    values = {
        "customer_id": mapping.customer_id,
        "status": status,
        "price_id": str((first.get("price") or {}).get("id") or ""),
        "quantity": int(first.get("quantity") or 1),
        "current_period_end": _period_end(obj),
        "cancel_at_period_end": bool(obj.get("cancel_at_period_end")),
        "last_event_created": created,
    }
    sub = Subscription.objects.select_for_update().filter(subscription_id=obj["id"]).first()
    plan_may_change = True  # what the plan budget follows: the subscription's price and whether it is live
    if sub is None:
        sub = Subscription.objects.create(tenant_id=mapping.tenant_id, subscription_id=obj["id"], **values)
    elif sub.tenant_id != mapping.tenant_id:
        _refuse(event=event, claimed=str(mapping.tenant_id), owner_id=sub.tenant_id, customer_id=mapping.customer_id)
    elif (
        created < sub.last_event_created
        # Stripe stamps events to the second: "created" and its first "updated" often share one.
        # A created event is by definition the oldest, and canceled is final in Stripe.
        or event["type"] == "customer.subscription.created"
        or sub.status == "canceled"
    ):
        return mapping.tenant_id  # not newer than what the mirror shows: no overwrite
    else:
        plan_may_change = (sub.price_id, sub.status) != (values["price_id"], values["status"])
        for field, value in values.items():
            setattr(sub, field, value)
        sub.save()
    record(
        "billing.subscription_synced",
        tenant=mapping.tenant_id,
        actor=Actor.system("stripe webhook"),
        target=sub,
        metadata={"event_id": event["id"], "type": event["type"], "status": status},
    )
    # The plan's limits are a tenant-wide budget: follow the plan (or remove it when the subscription ended).
    # Only when price or status moved: most updates (period renewals, seats) leave the plan as it was,
    # and the sync locks the tenant and reads the plan (measured: 42 % of a backlog drain's time).
    if plan_may_change:
        plan_budgets.plan_budget_sync(tenant_id=mapping.tenant_id, actor=Actor.system("stripe webhook"))
    return mapping.tenant_id


def _invoice(event: dict[str, Any]) -> int:
    obj = event["data"]["object"]
    mapping = _tenant_for(obj, event)
    created = int(event["created"])
    # Newer wins; within the same second "paid" wins (a paid invoice cannot fail afterwards).
    newer = created > mapping.payment_state_event_created
    if newer or (created == mapping.payment_state_event_created and event["type"] == "invoice.paid"):
        mapping.delinquent = event["type"] == "invoice.payment_failed"
        mapping.payment_state_event_created = created
        mapping.last_invoice_id = str(obj.get("id") or "")
        mapping.save(update_fields=["delinquent", "payment_state_event_created", "last_invoice_id"])
    mirror = _invoice_mirror(obj, event, mapping)
    # Dunning follows the invoice, not the customer flag: a failure of an invoice the mirror already
    # shows paid (an old event delivered late) opens nothing; a payment closes that invoice's case.
    if event["type"] == "invoice.paid":
        dunning.case_resolve(tenant_id=mapping.tenant_id, invoice_id=mirror.invoice_id)
    elif mirror.status not in FINAL_INVOICE_STATUSES:
        dunning.case_open(tenant_id=mapping.tenant_id, invoice_id=mirror.invoice_id)
    record(
        "billing.invoice_paid" if event["type"] == "invoice.paid" else "billing.payment_failed",
        tenant=mapping.tenant_id,
        actor=Actor.system("stripe webhook"),
        target_type="invoice",
        target_id=obj.get("id"),
        result="success" if event["type"] == "invoice.paid" else "failure",
        metadata={"event_id": event["id"], "amount_due": obj.get("amount_due"), "currency": obj.get("currency")},
    )
    return mapping.tenant_id


# --- the invoice mirror -------------------------------------------------------------------------

# Paid and void are final in Stripe: nothing after them changes the mirror. Within one second
# (Stripe stamps events to the second) the later state in an invoice's life wins.
FINAL_INVOICE_STATUSES = frozenset({"paid", "void"})
INVOICE_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}


def _timestamp(value: Any) -> datetime | None:
    return datetime.fromtimestamp(value, tz=UTC) if isinstance(value, int) and not isinstance(value, bool) else None


def _https(value: Any) -> str:
    # Shown as links on the billing page: only Stripe's https URLs, never another scheme.
    return value if isinstance(value, str) and value.startswith("https://") and len(value) <= 2000 else ""


def _invoice_status(obj: dict[str, Any], event_type: str) -> str:
    if event_type == "invoice.paid":
        return "paid"
    if event_type == "invoice.voided":
        return "void"
    status = str(obj.get("status") or "open")
    # A finalized or failed invoice is open at least, whatever an older snapshot says.
    return "open" if status == "draft" and event_type != "invoice.created" else status[:20]


def _invoice_period(obj: dict[str, Any]) -> tuple[datetime | None, datetime | None]:
    # The service period is on the lines (the invoice's own period_* are when items were added).
    lines = (obj.get("lines") or {}).get("data") or []
    period = (lines[0].get("period") or {}) if lines and isinstance(lines[0], dict) else {}
    start = _timestamp(period.get("start")) or _timestamp(obj.get("period_start"))
    end = _timestamp(period.get("end")) or _timestamp(obj.get("period_end"))
    return start, end


def _invoice_mirror(obj: dict[str, Any], event: dict[str, Any], mapping: StripeCustomer) -> Invoice:
    """Insert or update the tenant's copy of the invoice; an older event never overwrites a newer one."""
    invoice_id = obj.get("id")
    if not isinstance(invoice_id, str) or not invoice_id.startswith("in_") or len(invoice_id) > 255:
        raise BillingError("invoice event without a valid invoice id")
    created = int(event["created"])
    status = _invoice_status(obj, event["type"])
    start, end = _invoice_period(obj)
    subscription = obj.get("subscription") or (
        ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    )
    values = {
        "customer_id": mapping.customer_id,
        "subscription_id": subscription if isinstance(subscription, str) else "",
        "number": str(obj.get("number") or "")[:100],
        "status": status,
        "amount_due": int(obj.get("amount_due") or 0),
        "amount_paid": int(obj.get("amount_paid") or 0),
        "currency": str(obj.get("currency") or "")[:3],
        "hosted_invoice_url": _https(obj.get("hosted_invoice_url")),
        "invoice_pdf": _https(obj.get("invoice_pdf")),
        "period_start": start,
        "period_end": end,
        "issued_at": _timestamp(obj.get("created")) or _timestamp(created),
        "last_event_created": created,
    }
    row = Invoice.objects.select_for_update().filter(invoice_id=invoice_id).first()
    if row is None:
        return Invoice.objects.create(
            tenant_id=mapping.tenant_id,
            invoice_id=invoice_id,
            payment_failed=event["type"] == "invoice.payment_failed",
            **values,
        )
    if row.tenant_id != mapping.tenant_id:
        _refuse(event=event, claimed=str(mapping.tenant_id), owner_id=row.tenant_id, customer_id=mapping.customer_id)
    if row.status in FINAL_INVOICE_STATUSES:
        return row
    if created < row.last_event_created or (
        created == row.last_event_created and INVOICE_RANK.get(status, 1) < INVOICE_RANK.get(row.status, 1)
    ):
        return row  # older than what the mirror shows
    for field, value in values.items():
        # An event without a link or a number (payment_failed often carries less) keeps the known one.
        if value in ("", None) and field in {"number", "hosted_invoice_url", "invoice_pdf", "subscription_id"}:
            continue
        setattr(row, field, value)
    if event["type"] == "invoice.payment_failed":
        row.payment_failed = True
    elif status == "paid":
        row.payment_failed = False
    row.save()
    return row


def _invoice_finalized(event: dict[str, Any]) -> int:
    obj = event["data"]["object"]
    mapping = _tenant_for(obj, event)
    _invoice_mirror(obj, event, mapping)
    return mapping.tenant_id


def _invoice_voided(event: dict[str, Any]) -> int:
    """A voided invoice is owed no more: its dunning case closes like a paid one (final either way)."""
    obj = event["data"]["object"]
    mapping = _tenant_for(obj, event)
    mirror = _invoice_mirror(obj, event, mapping)
    if mirror.status == "void":
        dunning.case_resolve(tenant_id=mapping.tenant_id, invoice_id=mirror.invoice_id)
    return mapping.tenant_id


# --- customer.updated: e-mail and payment method summary ---------------------------------------


def _method_summary(method: dict[str, Any]) -> dict[str, Any]:
    """Brand, last four and expiry only: never more of a card than Stripe shows the customer."""
    kind = str(method.get("type") or method.get("object") or "")
    # A PaymentMethod nests the details under its type; a legacy card source carries them itself.
    details = method.get(kind) if isinstance(method.get(kind), dict) else method
    brand = str(details.get("brand") or "card") if kind == "card" else kind
    last4 = str(details.get("last4") or "")
    exp_month, exp_year = details.get("exp_month"), details.get("exp_year")
    return {
        "payment_method_id": str(method.get("id") or "")[:255],
        "brand": brand[:30],
        "last4": last4[-4:] if last4.isdigit() else "",
        "exp_month": exp_month if isinstance(exp_month, int) and 1 <= exp_month <= 12 else None,
        "exp_year": exp_year if isinstance(exp_year, int) and 2000 <= exp_year <= 9999 else None,
    }


def _customer_updated(event: dict[str, Any]) -> int | None:
    obj = event["data"]["object"]
    customer_id = obj.get("id")
    if not isinstance(customer_id, str) or not customer_id.startswith("cus_"):
        raise BillingError("customer event without a customer id")
    mapping = StripeCustomer.objects.select_for_update().filter(customer_id=customer_id).first()
    claimed = _claimed_tenant(obj)
    if mapping is None:
        if claimed is None:
            return None  # a customer of the Stripe account that is not one of ours: nothing to do
        raise BillingError(f"unknown customer {customer_id}")  # its checkout event may not be here yet
    if claimed is not None and claimed != str(mapping.tenant_id):
        _refuse(event=event, claimed=claimed, owner_id=mapping.tenant_id, customer_id=customer_id)
    created = int(event["created"])
    profile = PaymentProfile.objects.select_for_update().filter(tenant_id=mapping.tenant_id).first()
    if profile is not None and created < profile.last_event_created:
        return mapping.tenant_id  # an older snapshot of the customer
    if profile is None:
        profile = PaymentProfile(tenant_id=mapping.tenant_id, customer_id=customer_id)
    email = obj.get("email")
    profile.email = email if isinstance(email, str) and "@" in email and len(email) <= 254 else ""
    method = (obj.get("invoice_settings") or {}).get("default_payment_method") or obj.get("default_source")
    if isinstance(method, dict):
        summary = _method_summary(method)
    elif isinstance(method, str) and method:
        if method == profile.payment_method_id and profile.brand:
            summary = {}  # unchanged: no call to Stripe
        else:
            # The event names the method only; its summary is read from the API (retried on failure).
            fetched = stripe_api.payment_method_get(method) if method.startswith("pm_") else None
            summary = _method_summary(fetched) if fetched else {"payment_method_id": method[:255]}
    else:
        summary = {"payment_method_id": "", "brand": "", "last4": "", "exp_month": None, "exp_year": None}
    for field, value in summary.items():
        setattr(profile, field, value)
    profile.customer_id, profile.last_event_created = customer_id, created
    profile.save()
    record(
        "billing.customer_updated",
        tenant=mapping.tenant_id,
        actor=Actor.system("stripe webhook"),
        target_type="stripe_customer",
        target_id=customer_id,
        metadata={"event_id": event["id"], "payment_method": f"{profile.brand} {profile.last4}".strip()},
    )
    return mapping.tenant_id


HANDLERS: dict[str, Callable[[dict[str, Any]], int | None]] = {
    "checkout.session.completed": _checkout_completed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "invoice.paid": _invoice,
    "invoice.payment_failed": _invoice,
    "invoice.finalized": _invoice_finalized,
    "invoice.voided": _invoice_voided,
    "customer.updated": _customer_updated,
}
