"""Budgets on the request path: hard limits deny usage and the guard, naming the budget; throttles; preauth."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from apps.billing import ledger
from apps.billing.models import Budget, Reservation, UsageEvent
from tests.api.conftest import Api
from tests.billing.metering_helpers import (  # noqa: F401
    _clean_budget_counters,
    builtin_role,
    event,
    make_budget,
    make_priced,
)
from tests.keys.helpers import bearer, issue_token, make_client


@pytest.fixture
def priced(cast):
    return make_priced(cast.acme, cast.globex)


def _spent(budget: Budget) -> int:
    (standing,) = ledger.standings([ledger.Line(budget.pk, 10**12)], datetime.now(UTC).strftime("%Y%m"))
    return standing.spent


def test_the_hard_limit_denies_usage_names_the_budget_and_never_passes(api: Api, cast, priced):
    budget = make_budget(cast.acme, "2.50", name="Acme monthly")
    body = api.post("usage", {"events": [event(f"e{i}") for i in range(4)]}).json()  # 1 EUR each
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted", "denied", "denied"]
    assert body["allowed"] is False
    assert body["denied_by"]["name"] == "Acme monthly"
    assert body["denied_by"]["reason"] == "budget_exceeded"
    assert body["results"][2]["budget"]["id"] == budget.pk
    assert "Acme monthly" in body["results"][2]["message"]
    assert _spent(budget) == 2_000_000
    statuses = dict(UsageEvent.objects.for_tenant(cast.acme).values_list("idempotency_key", "status"))
    assert statuses == {"e0": "accepted", "e1": "accepted", "e2": "denied", "e3": "denied"}
    # A cheaper event still fits what is left (0.50); then nothing does.
    assert api.post("usage", event("half", inp=500)).json()["accepted"] == 1
    assert api.post("usage", event("one-more", inp=1)).json()["results"][0]["status"] == "denied"
    assert _spent(budget) == 2_500_000


def test_the_guard_allows_within_budget_and_denies_over_it_naming_the_budget(api: Api, cast, priced):
    make_budget(cast.acme, "5", name="Acme monthly")
    ok = api.post("guard", {"model": "openai/gpt-test", "estimated_input_tokens": 4000}).json()
    assert ok["allowed"] is True
    assert ok["estimated_cost"] == "4.000000"
    assert ok["budgets"][0]["remaining"] == "5.000000"
    denied = api.post("guard", {"model": "openai/gpt-test", "estimated_cost": "5.01"}).json()
    assert denied["allowed"] is False
    assert denied["denied_by"]["name"] == "Acme monthly"
    assert [r["code"] for r in denied["reasons"]] == ["budget_exceeded"]
    assert UsageEvent.objects.for_tenant(cast.acme).count() == 0  # the guard spends nothing


def test_role_and_client_budgets_apply_to_their_own_payers_only(api: Api, cast, priced):
    client_budget = make_budget(cast.acme, "1", scope="client", client=api.created.client, name="This client")
    other = make_client(tenant=cast.acme, builtin_role="member")
    role_budget = make_budget(cast.acme, "100", scope="role", role=builtin_role(cast.acme, "developer"), name="Devs")
    assert api.post("usage", event("c1")).json()["accepted"] == 1
    body = api.post("usage", event("c2")).json()
    assert body["denied_by"]["name"] == "This client"
    # Another client (a member-role one) is not limited by this client's budget nor the developers'.
    response = api.http.post(
        "/api/v1/usage", event("o1", inp=5000), content_type="application/json", **bearer(issue_token(other))
    )
    assert response.json()["accepted"] == 1
    assert _spent(client_budget) == 1_000_000
    assert _spent(role_budget) == 1_000_000  # only the developer client's accepted event


def test_a_member_subject_is_judged_by_the_members_role(api: Api, cast, priced):
    viewers = make_budget(cast.acme, "0.5", scope="role", role=builtin_role(cast.acme, "viewer"), name="Viewers")
    for_viewer = event("v1", subject={"type": "member", "email": "viewer@acme.example"})
    assert api.post("usage", for_viewer).json()["denied_by"]["name"] == "Viewers"
    assert api.post("usage", event("dev")).json()["accepted"] == 1  # the client itself is a developer
    assert _spent(viewers) == 0


def test_the_cost_per_minute_throttle_is_a_bucket_of_money(api: Api, cast, priced):
    make_budget(cast.acme, "1000", per_minute=Decimal("3"), name="Slow down")
    body = api.post("usage", {"events": [event(f"t{i}") for i in range(5)]}).json()
    assert [r["status"] for r in body["results"]] == ["accepted"] * 3 + ["denied"] * 2
    assert body["denied_by"]["reason"] == "budget_throttled"
    guard = api.post("guard", {"model": "openai/gpt-test", "estimated_cost": "1"}).json()
    assert [r["code"] for r in guard["reasons"]] == ["budget_throttled"]


def test_preauthorisation_required_model_or_tool_is_denied_without_a_reservation(api: Api, cast, priced):
    body = api.post(
        "usage", {"events": [event("risky", model="anthropic/big-risky"), event("tool", tool_calls=["wire-transfer"])]}
    ).json()
    assert [r["reason"] for r in body["results"]] == ["preauthorisation_required", "preauthorisation_required"]
    assert set(UsageEvent.objects.for_tenant(cast.acme).values_list("status", flat=True)) == {"denied"}
    guard = api.post("guard", {"model": "openai/gpt-test", "tools": ["wire-transfer"]}).json()
    assert guard["allowed"] is False
    assert "preauthorisation_required" in [r["code"] for r in guard["reasons"]]


def test_a_reservation_unlocks_the_risky_call_and_usage_settles_it(api: Api, cast, priced):
    budget = make_budget(cast.acme, "50")
    held = api.post("budget/reservations", {"estimated_cost": "20", "model": "anthropic/big-risky"}).json()
    rid = held["reservation_id"]
    assert held["status"] == "held"
    assert held["budgets"] == [budget.pk]
    guard = api.post("guard", {"model": "anthropic/big-risky", "estimated_cost": "15", "reservation_id": rid}).json()
    assert guard["allowed"] is True, guard
    # 1,000 in + 500 out at 10/10 per 1,000 = 15 EUR, within the 20 reserved: settles the reservation.
    body = api.post("usage", event("risky-ok", model="anthropic/big-risky", inp=1000, out=500, reservation_id=rid))
    assert body.json()["results"][0]["status"] == "accepted"
    row = Reservation.objects.for_tenant(cast.acme).get(uid=rid)
    assert (row.status, row.actual) == ("settled", Decimal("15.000000"))
    (standing,) = ledger.standings([ledger.Line(budget.pk, 10**12)], datetime.now(UTC).strftime("%Y%m"))
    assert (standing.spent, standing.reserved) == (15_000_000, 0)
    again = api.post("usage", event("risky-again", model="anthropic/big-risky", reservation_id=rid)).json()
    assert again["results"][0]["reason"] == "reservation_unusable"


def test_another_tenants_reservation_is_not_found(api: Api, cast, priced):
    from apps.billing.reservations import reservation_create

    globex_client = make_client(tenant=cast.globex, builtin_role="developer").client
    theirs = reservation_create(tenant=cast.globex, client=globex_client, amount=Decimal("5"))
    for path in (f"budget/reservations/{theirs.uid}/settle", f"budget/reservations/{theirs.uid}/release"):
        response = api.post(path, {"actual_cost": "1"} if path.endswith("settle") else {})
        assert response.status_code == 404, response.content
        assert response.json()["type"].endswith("not-found")
    body = api.post("usage", event("x", reservation_id=str(theirs.uid))).json()
    assert body["results"][0]["reason"] == "unknown_reservation"
    theirs.refresh_from_db()
    assert theirs.status == "held"
    assert theirs.actual is None


def test_settle_and_release_rules(api: Api, cast, priced):
    make_budget(cast.acme, "10")
    rid = api.post("budget/reservations", {"estimated_cost": 4}).json()["reservation_id"]
    too_much = api.post(f"budget/reservations/{rid}/settle", {"actual_cost": "4.000001"})
    assert too_much.status_code == 422
    assert too_much.json()["type"].endswith("settle-over-reservation")
    settled = api.post(f"budget/reservations/{rid}/settle", {"actual_cost": "3.5"}).json()
    assert (settled["status"], settled["actual"]) == ("settled", "3.500000")
    twice = api.post(f"budget/reservations/{rid}/settle", {"actual_cost": "1"})
    assert twice.status_code == 409
    assert api.post(f"budget/reservations/{rid}/release", {}).status_code == 409
    assert api.post("budget/reservations/not-a-uuid/release", {}).status_code == 404
    other = api.post("budget/reservations", {"estimated_cost": "6.5"})
    assert other.status_code == 200  # 10 - 3.5 spent = 6.5 left
    over = api.post("budget/reservations", {"estimated_cost": "0.000001"})
    assert over.status_code == 409
    assert over.json()["budget"]["reason"] == "budget_exceeded"
    released = api.post(f"budget/reservations/{other.json()['reservation_id']}/release", {}).json()
    assert released["status"] == "released"
    assert api.post("budget/reservations", {"estimated_cost": "6.5"}).status_code == 200


def test_an_expired_reservation_frees_its_money_without_a_worker_and_cannot_be_settled(api: Api, cast, priced):
    import time

    make_budget(cast.acme, "10")
    rid = api.post("budget/reservations", {"estimated_cost": 9, "ttl_seconds": 1}).json()["reservation_id"]
    assert api.post("budget/reservations", {"estimated_cost": 2}).status_code == 409
    time.sleep(1.2)
    assert api.post("budget/reservations", {"estimated_cost": 9.5}).status_code == 200  # the hold is gone
    late = api.post(f"budget/reservations/{rid}/settle", {"actual_cost": 1})
    assert late.status_code == 409
    assert late.json()["type"].endswith("reservation-expired")
    assert Reservation.objects.for_tenant(cast.acme).get(uid=rid).status == "expired"


def test_another_clients_reservation_is_not_found_either(api: Api, cast, priced):
    from apps.billing.reservations import reservation_create

    sibling = make_client(tenant=cast.acme, builtin_role="developer").client
    theirs = reservation_create(tenant=cast.acme, client=sibling, amount=Decimal("5"))
    assert api.post(f"budget/reservations/{theirs.uid}/release", {}).status_code == 404
    assert api.post(f"budget/reservations/{theirs.uid}/settle", {"actual_cost": "1"}).status_code == 404
    body = api.post("usage", event("y", reservation_id=str(theirs.uid))).json()
    assert body["results"][0]["reason"] == "unknown_reservation"
    guard = api.post("guard", {"model": "openai/gpt-test", "reservation_id": str(theirs.uid)}).json()
    assert "reservation_unusable" in [r["code"] for r in guard["reasons"]]
    theirs.refresh_from_db()
    assert theirs.status == "held"
