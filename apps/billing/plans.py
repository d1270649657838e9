"""Plans platform staff define (reads and audited writes).

A plan names a Stripe price (created in the Stripe dashboard; Checkout charges it),
what the plan includes and its monthly spend limits. Plans live on the platform
chain of the audit log: no tenant owns them.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from apps.audit.services import Actor, record
from apps.billing import plan_budgets
from apps.billing.errors import BillingError
from apps.billing.models import Plan

PRICE_ID = re.compile(r"^price_[A-Za-z0-9_]{1,200}$")
FIELDS = ("name", "stripe_price_id", "included_tokens", "currency", "seat_price", "soft_limit", "hard_limit", "active")


def plan_list() -> QuerySet[Plan]:
    return Plan.objects.order_by("-active", "name")


def plans_offered() -> QuerySet[Plan]:
    """Plans a tenant may choose in "Change plan"."""
    return Plan.objects.filter(active=True).order_by("seat_price", "name")


def plan_get(*, pk: int) -> Plan | None:
    if not 0 < pk < 2**63:
        return None
    return Plan.objects.filter(pk=pk).first()


def plan_offered(*, pk: int) -> Plan | None:
    plan = plan_get(pk=pk)
    return plan if plan is not None and plan.active else None


def plan_for_price(*, price_id: str) -> Plan | None:
    return Plan.objects.filter(stripe_price_id=price_id).first() if price_id else None


def _snapshot(plan: Plan) -> dict[str, Any]:
    values = {field: getattr(plan, field) for field in FIELDS}
    # Money as "500.00" whether it came from the form ("500") or the database (500.00).
    return {field: f"{value:.2f}" if isinstance(value, Decimal) else value for field, value in values.items()}


def _validate(values: dict[str, Any]) -> None:
    if not PRICE_ID.match(str(values.get("stripe_price_id") or "")):
        raise BillingError("A Stripe price id looks like price_1Pgaf… (copy it from the Stripe dashboard).")
    soft, hard = values.get("soft_limit"), values.get("hard_limit")
    if soft is not None and hard is not None and soft > hard:
        raise BillingError("The soft limit must not be above the hard limit.")


@transaction.atomic
def plan_save(*, plan: Plan | None, values: dict[str, Any], by: Any) -> Plan:
    """Create (``plan`` None) or update a plan; audited with before/after on the platform chain.

    Raises BillingError on a malformed price id, soft above hard, or a name or price
    id another plan already uses; nothing is written then.
    """
    _validate(values)
    before = _snapshot(plan) if plan is not None else None
    old_price_id = plan.stripe_price_id if plan is not None else ""
    target = plan if plan is not None else Plan()
    for field in FIELDS:
        if field in values:
            setattr(target, field, values[field])
    target.currency = (target.currency or "eur").lower()
    try:
        with transaction.atomic():  # savepoint: a duplicate name/price becomes a form error
            target.save()
    except IntegrityError:
        raise BillingError("Another plan already has this name or Stripe price id.") from None
    after = _snapshot(target)
    changed = {k: [before[k], after[k]] for k in after if before is not None and before[k] != after[k]}
    record(
        "billing.plan_create" if before is None else "billing.plan_update",
        actor=Actor.for_user(by),
        target=target,
        metadata={"plan": after} if before is None else {"changed": changed},
    )
    if before is not None:  # subscribed tenants' plan budgets follow the new limits (or the new price id)
        plan_budgets.plan_budgets_sync_for_plan(plan=target, old_price_id=old_price_id, actor=Actor.for_user(by))
    return target
