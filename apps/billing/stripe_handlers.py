"""Stripe event handlers: each applies one event type and returns the tenant id it applied to.

Called by ``services.webhook_process`` inside the transaction that marks the inbox row done,
so each must be idempotent and order-safe (an older event never overwrites newer state).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apps.audit.services import Actor, record
from apps.billing.errors import BillingError, TenantMismatchError
from apps.billing.models import StripeCustomer, Subscription
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


HANDLERS: dict[str, Callable[[dict[str, Any]], int | None]] = {
    "checkout.session.completed": _checkout_completed,
    "customer.subscription.created": _subscription_changed,
    "customer.subscription.updated": _subscription_changed,
    "customer.subscription.deleted": _subscription_changed,
    "invoice.paid": _invoice,
    "invoice.payment_failed": _invoice,
}
