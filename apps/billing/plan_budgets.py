"""The tenant's plan limits as a real budget: one tenant-wide ``Budget`` the plan manages.

A plan's hard limit becomes a tenant-wide budget (``source="plan"``) with the
plan's hard limit as its monthly amount and soft / hard as its alert share, so
the budget check of ``/api/v1/usage``, ``/api/v1/guard`` and reservations
(``apps.billing.ledger``) enforces it with no code path of its own.

``plan_budget_sync`` is the only writer: called when a tenant's subscription
changes (the Stripe subscription handler) and when staff edit a plan (for every
tenant on it). Tenants see the row on the budgets page as "from your plan" and
cannot change or delete it (``budgets.budget_update`` / ``budget_delete``
refuse). The row is updated in place on a plan change, so this month's spend
stays counted against it; it is removed when the tenant has no live
subscription, its plan has no hard limit, or the plan's currency is not the
currency usage is priced in (``BILLING_CURRENCY``: no exchange rate is applied).
"""

from __future__ import annotations

import logging
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import transaction

from apps.audit.services import Actor, record
from apps.billing import budgets
from apps.billing.models import Budget, Plan, Subscription
from apps.tenants.models import Tenant

logger = logging.getLogger(__name__)

# The subscription states in which the tenant is on its plan (as ``subscriptions.LIVE_STATUSES``).
LIVE_STATUSES = frozenset({"active", "trialing", "past_due", "unpaid"})


def current_plan(*, tenant_id: int) -> Plan | None:
    """The plan of the tenant's live subscription (the most recently changed one), or None."""
    sub = (
        Subscription.objects.for_tenant(tenant_id)
        .filter(status__in=LIVE_STATUSES)
        .exclude(price_id="")
        .order_by("-updated_at", "-pk")
        .first()
    )
    if sub is None:
        return None
    return Plan.objects.filter(stripe_price_id=sub.price_id).first()


def soft_percent(plan: Plan) -> int:
    """The alert share of a plan budget: soft / hard as a whole percent (1–100); 100 when no soft limit."""
    if plan.soft_limit is None or not plan.hard_limit:
        return 100
    share = (Decimal(plan.soft_limit) * 100 / Decimal(plan.hard_limit)).to_integral_value(rounding=ROUND_HALF_UP)
    return max(1, min(100, int(share)))


def _enforceable(plan: Plan | None) -> bool:
    return (
        plan is not None
        and plan.hard_limit is not None
        and plan.hard_limit > 0
        and (plan.currency or "").upper() == settings.BILLING_CURRENCY
    )


def _name(tenant_id: int, plan: Plan, own_pk: int | None) -> str:
    """ "Plan: <name>", unless a budget of the tenant uses that name already."""
    base = f"Plan: {plan.name}"[:100]
    taken = set(
        Budget.objects.for_tenant(tenant_id)
        .exclude(pk=own_pk)
        .filter(name__startswith=base[:90])
        .values_list("name", flat=True)
    )
    name, n = base, 2
    while name in taken:
        name = f"{base[:90]} ({n})"
        n += 1
    return name


def _snapshot(budget: Budget) -> dict[str, Any]:
    return {
        "name": budget.name,
        "plan": budget.plan.name if budget.plan else None,
        "amount": f"{budget.amount:.2f}",
        "soft_percent": budget.soft_percent,
    }


@transaction.atomic
def plan_budget_sync(*, tenant_id: int, actor: Actor | None = None) -> Budget | None:
    """Create, update or remove the tenant's plan budget to match its current plan; returns it (None if none).

    Idempotent: nothing is written (and nothing audited) when the row already matches.
    The tenant row is locked so two syncs of one tenant (two webhook workers) do not race.
    """
    Tenant.objects.select_for_update().filter(pk=tenant_id).first()
    actor = actor or Actor.system("plan budgets")
    plan = current_plan(tenant_id=tenant_id)
    existing = Budget.objects.for_tenant(tenant_id).filter(source=Budget.Source.PLAN).select_related("plan").first()
    if not _enforceable(plan):
        if plan is not None and plan.hard_limit and (plan.currency or "").upper() != settings.BILLING_CURRENCY:
            logger.warning(
                "plan %s is in %s, usage is priced in %s: its hard limit is not enforced",
                plan.pk,
                plan.currency,
                settings.BILLING_CURRENCY,
            )
        if existing is not None:
            record(
                "budget.plan_remove",
                tenant=tenant_id,
                actor=actor,
                target=existing,
                metadata={**_snapshot(existing), "now_plan": plan.name if plan else None},
            )
            existing.delete()
        return None
    if plan is None:  # for the type checker: _enforceable said so
        return None
    wanted = {
        "plan_id": plan.pk,
        "amount": Decimal(plan.hard_limit).quantize(Decimal("0.01")),
        "soft_percent": soft_percent(plan),
        "currency": settings.BILLING_CURRENCY,
        "active": True,
    }
    if existing is None:
        budget = Budget(
            tenant_id=tenant_id,
            source=Budget.Source.PLAN,
            scope=Budget.Scope.TENANT,
            name=_name(tenant_id, plan, None),
            **wanted,
        )
        budget.save()
        budget.plan = plan
        record("budget.plan_apply", tenant=tenant_id, actor=actor, target=budget, metadata=_snapshot(budget))
        return budget
    if all(getattr(existing, field) == value for field, value in wanted.items()) and existing.name.startswith(
        f"Plan: {plan.name}"[:90]
    ):
        return existing
    before = _snapshot(existing)
    for field, value in wanted.items():
        setattr(existing, field, value)
    existing.name = _name(tenant_id, plan, existing.pk)
    existing.save()
    budgets.alerts_rearm(existing)
    existing.plan = plan
    record(
        "budget.plan_apply",
        tenant=tenant_id,
        actor=actor,
        target=existing,
        metadata={"before": before, "after": _snapshot(existing)},
    )
    return existing


def plan_budgets_sync_for_plan(*, plan: Plan, old_price_id: str = "", actor: Actor | None = None) -> int:
    """Sync the plan budget of every tenant subscribed to ``plan`` (or to its former price); returns how many."""
    prices = {plan.stripe_price_id, old_price_id} - {""}
    tenant_ids = (
        Subscription.objects.filter(price_id__in=prices, status__in=LIVE_STATUSES)
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    tenant_ids = set(tenant_ids) | set(
        Budget.objects.filter(source=Budget.Source.PLAN, plan=plan).values_list("tenant_id", flat=True)
    )
    for tenant_id in sorted(tenant_ids):
        plan_budget_sync(tenant_id=tenant_id, actor=actor)
    return len(tenant_ids)
