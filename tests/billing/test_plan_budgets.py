"""The tenant's plan limits are a real tenant-wide budget: applied by webhooks and staff edits, enforced, read-only."""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.billing import budgets, plan_budgets, plans
from apps.billing.models import Budget, BudgetAlert, Plan, StripeCustomer, UsageEvent, WebhookEvent
from tests.api import conftest as api_conftest
from tests.api.conftest import Api
from tests.billing.conftest import deliver, event, subscription
from tests.billing.metering_helpers import _clean_budget_counters, make_budget, make_priced  # noqa: F401
from tests.billing.metering_helpers import event as usage_event

NOW = int(time.time())


@pytest.fixture
def send(db, django_capture_on_commit_callbacks):
    client = Client()

    def apply(payload: dict[str, Any]) -> WebhookEvent:
        with django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload).status_code == 200
        return WebhookEvent.objects.get(event_id=payload["id"])

    return apply


@pytest.fixture(autouse=True)
def _fresh_api_caches():
    yield from api_conftest._fresh_caches.__wrapped__()


@pytest.fixture
def api(cast) -> Api:
    return api_conftest.api.__wrapped__(cast)


@pytest.fixture
def priced(cast):
    return make_priced(cast.acme, cast.globex)


@pytest.fixture
def team(cast) -> Plan:
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    starter = Plan.objects.create(
        name="Starter",
        stripe_price_id="price_starter",
        currency="eur",
        soft_limit=Decimal("2"),
        hard_limit=Decimal("3"),
    )
    Plan.objects.create(
        name="Team", stripe_price_id="price_team", currency="eur", soft_limit=Decimal("8"), hard_limit=Decimal("10")
    )
    return starter


def on_price(price: str, *, status: str = "active", created: int = NOW, kind: str = "updated") -> dict:
    obj = subscription("cus_acme", status=status)
    obj["items"]["data"][0]["price"]["id"] = price
    return event(f"customer.subscription.{kind}", obj, created=created)


def plan_budget(tenant) -> Budget | None:
    return Budget.objects.for_tenant(tenant).filter(source=Budget.Source.PLAN).first()


def test_a_subscription_to_a_plan_with_a_hard_limit_denies_usage_over_it_naming_the_plan_budget(
    cast, team, send, api: Api, priced
) -> None:
    send(on_price("price_starter", kind="created"))
    budget = plan_budget(cast.acme)
    assert budget is not None
    assert (budget.name, budget.amount, budget.soft_percent, budget.scope, budget.plan_id) == (
        "Plan: Starter",
        Decimal("3.00"),
        67,  # 2 of 3, rounded half up
        "tenant",
        team.pk,
    )
    assert AuditEvent.objects.filter(action="budget.plan_apply", tenant=cast.acme).count() == 1
    body = api.post("usage", {"events": [usage_event(f"e{i}") for i in range(4)]}).json()  # 1 EUR each
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted", "accepted", "denied"]
    assert body["denied_by"]["name"] == "Plan: Starter"
    assert body["denied_by"]["id"] == budget.pk
    guard = api.post("guard", {"model": "openai/gpt-test", "estimated_cost": "0.01"}).json()
    assert guard["allowed"] is False
    assert guard["denied_by"]["name"] == "Plan: Starter"
    # Denied usage is stored for the record but never counted.
    assert UsageEvent.objects.for_tenant(cast.acme).filter(status="accepted").count() == 3


def test_the_plan_budget_applies_besides_the_tenants_own_tenant_wide_budget(cast, team, send, api: Api, priced):
    own = make_budget(cast.acme, "100", name="Our cap")
    send(on_price("price_starter"))
    assert {b.name for b in Budget.objects.for_tenant(cast.acme)} == {"Our cap", "Plan: Starter"}
    body = api.post("usage", {"events": [usage_event(f"b{i}") for i in range(4)]}).json()
    assert body["denied_by"]["name"] == "Plan: Starter"
    budgets.budget_update(budget=own, data={"amount": Decimal("50")})  # still editable: the plan's is apart


def test_a_plan_change_updates_the_same_budget_and_keeps_this_months_spend(cast, team, send, api: Api, priced):
    send(on_price("price_starter", created=NOW - 10))
    first = plan_budget(cast.acme)
    assert api.post("usage", {"events": [usage_event(f"s{i}") for i in range(3)]}).json()["accepted"] == 3
    send(on_price("price_team", created=NOW))
    moved = plan_budget(cast.acme)
    assert moved.pk == first.pk
    assert (moved.name, moved.amount, moved.soft_percent) == ("Plan: Team", Decimal("10.00"), 80)
    body = api.post("usage", {"events": [usage_event(f"t{i}") for i in range(8)]}).json()
    assert body["accepted"] == 7  # 3 spent under Starter count against Team's 10
    assert body["denied_by"]["name"] == "Plan: Team"
    # An older event (the Starter days) delivered late changes nothing.
    send(on_price("price_starter", created=NOW - 5))
    assert plan_budget(cast.acme).amount == Decimal("10.00")


def test_cancelling_or_a_plan_without_hard_limit_removes_the_plan_budget(cast, team, send) -> None:
    send(on_price("price_starter", created=NOW - 10))
    assert plan_budget(cast.acme) is not None
    send(on_price("price_starter", created=NOW, kind="deleted"))
    assert plan_budget(cast.acme) is None
    assert AuditEvent.objects.filter(action="budget.plan_remove", tenant=cast.acme).count() == 1
    Plan.objects.create(name="Open", stripe_price_id="price_open", currency="eur")
    StripeCustomer.objects.filter(tenant=cast.acme).update()
    send(
        event(
            "customer.subscription.created",
            {**subscription("cus_acme", sub_id="sub_test_2"), "items": _items("price_open")},
        )
    )
    assert plan_budget(cast.acme) is None


def _items(price: str) -> dict:
    obj = subscription("cus_acme")
    obj["items"]["data"][0]["price"]["id"] = price
    return obj["items"]


def test_a_plan_in_another_currency_is_not_turned_into_a_budget(cast, team, send, settings) -> None:
    Plan.objects.create(name="Dollars", stripe_price_id="price_usd", currency="usd", hard_limit=Decimal("5"))
    send(on_price("price_usd"))
    assert plan_budget(cast.acme) is None


def test_staff_editing_the_plan_moves_every_subscribed_tenants_budget(cast, team, send) -> None:
    send(on_price("price_starter"))
    values = {f: getattr(team, f) for f in plans.FIELDS}
    plans.plan_save(
        plan=team, values={**values, "soft_limit": Decimal("5"), "hard_limit": Decimal("20")}, by=cast.staff
    )
    budget = plan_budget(cast.acme)
    assert (budget.amount, budget.soft_percent) == (Decimal("20.00"), 25)
    plans.plan_save(plan=team, values={**values, "soft_limit": None, "hard_limit": None}, by=cast.staff)
    assert plan_budget(cast.acme) is None
    assert plan_budget(cast.globex) is None  # not subscribed: untouched


def test_the_service_refuses_to_edit_or_delete_the_plan_budget(cast, team, send) -> None:
    send(on_price("price_starter"))
    budget = plan_budget(cast.acme)
    with pytest.raises(budgets.PlanManagedError):
        budgets.budget_update(budget=budget, data={"amount": Decimal("1000")})
    with pytest.raises(budgets.PlanManagedError):
        budgets.budget_delete(budget=budget)
    assert plan_budget(cast.acme).amount == Decimal("3.00")


def test_the_budgets_page_shows_it_from_the_plan_and_tenants_cannot_change_it(cast, team, send, client_for):
    send(on_price("price_starter"))
    budget = plan_budget(cast.acme)
    owner = client_for(cast.owner)
    page = owner.get(reverse("billing_usage:budget_list", kwargs={"tenant_slug": "acme"})).content.decode()
    assert "Plan: Starter" in page
    assert "From your plan" in page
    assert reverse("billing_usage:budget_edit", kwargs={"tenant_slug": "acme", "pk": budget.pk}) not in page
    edit = reverse("billing_usage:budget_edit", kwargs={"tenant_slug": "acme", "pk": budget.pk})
    delete = reverse("billing_usage:budget_delete", kwargs={"tenant_slug": "acme", "pk": budget.pk})
    assert owner.get(edit).status_code == 403
    assert (
        owner.post(edit, {"name": "Mine", "scope": "tenant", "amount": "9999", "soft_percent": "80"}).status_code == 403
    )
    assert owner.post(delete).status_code == 403
    fresh = plan_budget(cast.acme)
    assert (fresh.name, fresh.amount) == ("Plan: Starter", Decimal("3.00"))
    assert not AuditEvent.objects.filter(action__in=["budget.update", "budget.delete"], tenant=cast.acme).exists()


def test_sync_is_idempotent_and_audits_only_changes(cast, team, send) -> None:
    send(on_price("price_starter"))
    before = AuditEvent.objects.filter(action__startswith="budget.plan").count()
    plan_budgets.plan_budget_sync(tenant_id=cast.acme.pk)
    plan_budgets.plan_budget_sync(tenant_id=cast.acme.pk)
    assert AuditEvent.objects.filter(action__startswith="budget.plan").count() == before
    assert Budget.objects.for_tenant(cast.acme).count() == 1


def test_a_plan_change_rearms_the_alerts_its_new_limits_no_longer_reach(cast, team, send) -> None:
    send(on_price("price_starter", created=NOW - 10))
    budget = plan_budget(cast.acme)
    period = budgets.period_start(budgets.period_of(timezone.now()))
    for kind, spent in (("soft", "2.50"), ("hard", "3.00")):
        BudgetAlert.objects.create(tenant=cast.acme, budget=budget, period=period, kind=kind, spent=Decimal(spent))
    Plan.objects.create(
        name="Wide", stripe_price_id="price_wide", currency="eur", soft_limit=Decimal("2"), hard_limit=Decimal("100")
    )
    send(on_price("price_wide", created=NOW - 5))
    # Soft (2 of 100) is still reached by 2.50: kept, no second e-mail. The hard limit moved to 100: re-armed.
    assert set(BudgetAlert.objects.filter(budget=budget).values_list("kind", flat=True)) == {"soft"}
    send(on_price("price_team", created=NOW))
    assert not BudgetAlert.objects.filter(budget=budget).exists()  # Team's soft share (8) is not reached by 2.50


def test_raising_an_own_budget_rearms_its_alerts_but_an_unchanged_limit_keeps_them(cast) -> None:
    own = make_budget(cast.acme, "10", name="Own")
    period = budgets.period_start(budgets.period_of(timezone.now()))
    BudgetAlert.objects.create(tenant=cast.acme, budget=own, period=period, kind="soft", spent=Decimal("8.5"))
    budgets.budget_update(budget=own, data={"name": "Own cap"})
    assert BudgetAlert.objects.filter(budget=own).count() == 1  # nothing moved: the alert stands
    budgets.budget_update(budget=own, data={"amount": Decimal("100")})
    assert not BudgetAlert.objects.filter(budget=own).exists()
