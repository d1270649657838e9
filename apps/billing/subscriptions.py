"""A tenant's billing as the console shows it, and the two ways out to Stripe (Checkout, Portal).

Reads take the tenant keyword-only and stay inside it. The writes create a Stripe
session server-side (the tenant id goes in ``client_reference_id`` and metadata
``bastion_tenant``, so the webhook that follows can be matched and checked against
the customer mapping), audit it, and return the URL the view redirects to.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.audit.services import Actor, record
from apps.billing import dunning, plans, stripe_api
from apps.billing.errors import BillingError
from apps.billing.models import DunningCase, Invoice, PaymentProfile, Plan, StripeCustomer, Subscription
from apps.core.pagination import Page, keyset_page
from apps.tenants.models import Membership, Tenant

# Subscription states in which a tenant already pays: "Change plan" goes to the Portal's update flow
# (a second Checkout would start a second subscription and charge twice). "incomplete" is not one:
# its first payment never succeeded, Stripe expires it within a day, and a new Checkout replaces it.
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid"})
MAX_SEATS = 10_000


@dataclass(frozen=True)
class Overview:
    configured: bool
    customer: StripeCustomer | None
    subscription: Subscription | None
    plan: Plan | None
    profile: PaymentProfile | None
    case: DunningCase | None
    case_invoice: Invoice | None

    @property
    def live(self) -> bool:
        return self.subscription is not None and self.subscription.status in LIVE_STATUSES


def customer_for(*, tenant: Tenant) -> StripeCustomer | None:
    return StripeCustomer.objects.for_tenant(tenant).first()


def current_subscription(*, tenant: Tenant) -> Subscription | None:
    """The live subscription if any, else the most recently changed one."""
    subs = list(Subscription.objects.for_tenant(tenant).order_by("-updated_at", "-pk")[:20])
    return next((s for s in subs if s.status in LIVE_STATUSES), subs[0] if subs else None)


def overview(*, tenant: Tenant) -> Overview:
    subscription = current_subscription(tenant=tenant)
    case = dunning.banner_case(tenant=tenant)
    return Overview(
        configured=stripe_api.configured(),
        customer=customer_for(tenant=tenant),
        subscription=subscription,
        plan=plans.plan_for_price(price_id=subscription.price_id) if subscription else None,
        profile=PaymentProfile.objects.for_tenant(tenant).first(),
        case=case,
        case_invoice=invoice_get(tenant=tenant, invoice_id=case.invoice_id) if case else None,
    )


@dataclass(frozen=True)
class Summary:
    configured: bool
    subscription: Subscription | None  # with ``plan_name`` ("" for a price no plan names)
    banner: dunning.Banner | None


def summary(*, tenant: Tenant) -> Summary:
    """What the dashboard card needs, in one query (the banner state comes from its cache)."""
    plan_name = Subquery(Plan.objects.filter(stripe_price_id=OuterRef("price_id")).values("name")[:1])
    subs = list(
        Subscription.objects.for_tenant(tenant)
        .annotate(plan_name=Coalesce(plan_name, Value("")))
        .order_by("-updated_at", "-pk")[:20]
    )
    subscription = next((s for s in subs if s.status in LIVE_STATUSES), subs[0] if subs else None)
    return Summary(
        configured=stripe_api.configured(), subscription=subscription, banner=dunning.banner_for(tenant=tenant)
    )


def invoice_page(*, tenant: Tenant, cursor: str | None, size: int = 20) -> Page:
    """Newest first, keyset-paginated (index billing_invoice_list). Raises InvalidCursorError."""
    return keyset_page(Invoice.objects.for_tenant(tenant), cursor=cursor, size=size, time_field="issued_at")


def invoice_get(*, tenant: Tenant, invoice_id: str) -> Invoice | None:
    return Invoice.objects.for_tenant(tenant).filter(invoice_id=invoice_id).first()


def invoice_by_pk(*, tenant: Tenant, pk: int) -> Invoice | None:
    if not 0 < pk < 2**63:
        return None
    return Invoice.objects.for_tenant(tenant).filter(pk=pk).first()


def invoices_recent(*, tenant: Tenant, limit: int = 5) -> QuerySet[Invoice]:
    return Invoice.objects.for_tenant(tenant).order_by("-issued_at", "-pk")[:limit]


# --- writes: sessions at Stripe -----------------------------------------------------------------


def _audit(action: str, *, tenant: Tenant, membership: Membership, session_id: str, meta: dict[str, Any]) -> None:
    record(
        action,
        tenant=tenant,
        actor=Actor.for_user(membership.user),
        target_type="stripe_session",
        target_id=session_id,
        metadata=meta,
    )


def _minute_bucket(now: datetime, minutes: int = 10) -> int:
    # The idempotency key holds for ten minutes: a double click or a retried POST gets the same
    # session; a new attempt later gets a fresh one (a Checkout Session lives 24 h).
    return int(now.timestamp()) // (minutes * 60)


def checkout_start(
    *, tenant: Tenant, membership: Membership, plan: Plan, seats: int, success_url: str, cancel_url: str
) -> str:
    """Start "change plan": a Checkout Session for a first subscription, else the Portal's update flow.

    Returns the Stripe URL to redirect to. Raises BillingError (inactive plan, bad seat
    count) or stripe_api.StripeUnavailableError (no key, Stripe refused or unreachable).
    """
    if not plan.active:
        raise BillingError("This plan is no longer offered.")
    if not 1 <= seats <= MAX_SEATS:
        raise BillingError(f"Choose between 1 and {MAX_SEATS} seats.")
    customer = customer_for(tenant=tenant)
    current = current_subscription(tenant=tenant)
    bucket = _minute_bucket(timezone.now())
    if customer is not None and current is not None and current.status in LIVE_STATUSES:
        # Stripe's own confirmation page for the change (prorations shown there), on the item
        # Stripe has now: the item id is re-read, never taken from the form.
        item_id = stripe_api.subscription_item_id(current.subscription_id)
        params = {
            "customer": customer.customer_id,
            "return_url": cancel_url,
            "flow_data": {
                "type": "subscription_update_confirm",
                "subscription_update_confirm": {
                    "subscription": current.subscription_id,
                    "items": [{"id": item_id, "price": plan.stripe_price_id, "quantity": seats}],
                },
                "after_completion": {"type": "redirect", "redirect": {"return_url": success_url}},
            },
        }
        key = stripe_api.idempotency_key(
            "plan-change", tenant.pk, membership.pk, current.subscription_id, plan.stripe_price_id, seats, bucket
        )
        session_id, url = stripe_api.portal_session_create(params=params, key=key)
        _audit(
            "billing.plan_change_started",
            tenant=tenant,
            membership=membership,
            session_id=session_id,
            meta={
                "plan": plan.name,
                "price": plan.stripe_price_id,
                "seats": seats,
                "subscription": current.subscription_id,
            },
        )
        return url
    tenant_ref = str(tenant.pk)
    params = {
        "mode": "subscription",
        "line_items": [{"price": plan.stripe_price_id, "quantity": seats}],
        "client_reference_id": tenant_ref,
        "metadata": {"bastion_tenant": tenant_ref, "bastion_plan": str(plan.pk)},
        "subscription_data": {"metadata": {"bastion_tenant": tenant_ref}},
        "success_url": success_url,
        "cancel_url": cancel_url,
    }
    if customer is not None:
        params["customer"] = customer.customer_id
    elif membership.user.email:
        params["customer_email"] = membership.user.email
    key = stripe_api.idempotency_key("checkout", tenant.pk, membership.pk, plan.stripe_price_id, seats, bucket)
    session_id, url = stripe_api.checkout_session_create(params=params, key=key)
    _audit(
        "billing.checkout_started",
        tenant=tenant,
        membership=membership,
        session_id=session_id,
        meta={"plan": plan.name, "price": plan.stripe_price_id, "seats": seats},
    )
    return url


def portal_start(*, tenant: Tenant, membership: Membership, return_url: str) -> str:
    """A Customer Portal session for "manage payment"; returns its URL.

    Raises BillingError when the tenant has no Stripe customer yet, or StripeUnavailableError.
    """
    customer = customer_for(tenant=tenant)
    if customer is None:
        raise BillingError("There is no Stripe customer for this tenant yet: choose a plan first.")
    key = stripe_api.idempotency_key("portal", tenant.pk, membership.pk, _minute_bucket(timezone.now()))
    session_id, url = stripe_api.portal_session_create(
        params={"customer": customer.customer_id, "return_url": return_url}, key=key
    )
    _audit("billing.portal_opened", tenant=tenant, membership=membership, session_id=session_id, meta={})
    return url
