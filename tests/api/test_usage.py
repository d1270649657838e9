"""POST /api/v1/usage: stored once per idempotency key, priced from the catalog, tenant from the token, clean errors."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import jwt
import pytest

from apps.billing import ledger
from apps.billing.models import UsageEvent
from apps.keys import conf, signing
from tests.api.conftest import Api
from tests.billing.metering_helpers import _clean_budget_counters, event, make_budget, make_priced  # noqa: F401
from tests.keys.helpers import bearer, issue_token


@pytest.fixture
def priced(cast):
    return make_priced(cast.acme, cast.globex)


def _rows(tenant):
    return list(UsageEvent.objects.for_tenant(tenant).order_by("pk"))


def test_one_event_is_priced_at_the_tenants_own_prices_and_stored(api: Api, cast, priced):
    # Globex has a model of the same name at 100 EUR: Acme's 1 EUR / 2 EUR per 1,000 apply.
    response = api.post("usage", event("k-1", inp=1500, out=250, tool_calls=["web-search"], prompt_hash="abc123"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["allowed"] is True
    assert body["accepted"] == 1
    assert body["currency"] == "EUR"
    result = body["results"][0]
    assert result["status"] == "accepted"
    assert result["cost"] == "2.000000"
    (row,) = _rows(cast.acme)
    assert row.pk == result["event_id"]
    assert (row.cost, row.model_id, row.client_id) == (Decimal("2.000000"), priced.model.pk, api.created.client.pk)
    assert (row.tool_calls, row.prompt_hash, row.status) == (["web-search"], "abc123", "accepted")
    assert _rows(cast.globex) == []


def test_a_repeated_idempotency_key_is_one_row_and_one_cost(api: Api, cast, priced):
    budget = make_budget(cast.acme, "100")
    first = api.post("usage", event("same-key")).json()["results"][0]
    again = api.post("usage", event("same-key", inp=9000)).json()  # a replay with other numbers changes nothing
    assert again["duplicates"] == 1
    assert again["accepted"] == 0
    assert again["results"][0]["status"] == "duplicate"
    assert again["results"][0]["event_id"] == first["event_id"]
    assert again["results"][0]["cost"] == "1.000000"
    assert [(r.idempotency_key, r.cost) for r in _rows(cast.acme)] == [("same-key", Decimal("1.000000"))]
    (standing,) = ledger.standings([ledger.Line(budget.pk, 10**8)], datetime.now(UTC).strftime("%Y%m"))
    assert standing.spent == 1_000_000  # counted once


def test_a_batch_with_duplicates_inside_stores_each_key_once(api: Api, cast, priced):
    response = api.post("usage", {"events": [event("a"), event("b", inp=2000), event("a", inp=5000), event("c")]})
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["accepted", "accepted", "duplicate", "accepted"]
    assert body["results"][2]["event_id"] == body["results"][0]["event_id"]
    assert body["results"][2]["cost"] == "1.000000"  # the stored event's, not the repeat's 5,000 tokens
    assert (body["accepted"], body["duplicates"]) == (3, 1)
    assert sorted((r.idempotency_key, r.cost) for r in _rows(cast.acme)) == [
        ("a", Decimal("1.000000")),
        ("b", Decimal("2.000000")),
        ("c", Decimal("1.000000")),
    ]


def test_the_same_key_in_another_tenant_is_another_event(api: Api, cast, priced):
    from apps.billing.metering import UsageIn, usage_ingest

    api.post("usage", event("shared"))
    usage_ingest(
        tenant=cast.globex,
        client=None,
        events=[UsageIn("shared", "openai/gpt-test", 1000, 0, datetime.now(UTC))],
    )
    assert len(_rows(cast.acme)) == 1
    assert len(_rows(cast.globex)) == 1
    assert _rows(cast.globex)[0].cost == Decimal("100.000000")


def test_unknown_model_and_member_are_rejected_and_not_stored(api: Api, cast, priced):
    body = api.post(
        "usage",
        {
            "events": [
                event("m1", model="openai/nope"),
                event("m2", subject={"type": "member", "email": "owner@globex.example"}),  # another tenant's person
                event("m3", subject={"type": "member", "email": "member@acme.example"}),
            ]
        },
    ).json()
    assert [(r["status"], r["reason"]) for r in body["results"]] == [
        ("rejected", "unknown_model"),
        ("rejected", "unknown_member"),
        ("accepted", None),
    ]
    (row,) = _rows(cast.acme)
    assert row.idempotency_key == "m3"
    assert row.member.user.email == "member@acme.example"


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ("{not json", 400, "malformed-json"),
        (json.dumps({"idempotency_key": "x"}), 422, "validation-failed"),
        (json.dumps(event("x", inp=-1)), 422, "validation-failed"),
        (json.dumps(event("x", inp=True)), 422, "validation-failed"),
        (json.dumps(event("x", inp=10**12)), 422, "validation-failed"),
        (json.dumps({**event("x"), "tenant": "globex"}), 422, "validation-failed"),  # the tenant is the token's
        (json.dumps({**event("x"), "timestamp": "2026-01-01T10:00:00"}), 422, "validation-failed"),  # no zone
        (json.dumps(event("x", tool_calls=["bad name!"])), 422, "validation-failed"),
        (json.dumps(event("")), 422, "validation-failed"),
        (json.dumps(event("bad\nkey")), 422, "validation-failed"),
        (json.dumps({"events": []}), 422, "validation-failed"),
        (json.dumps({"events": [event(f"k{i}") for i in range(1001)]}), 422, "validation-failed"),
        (json.dumps([event("x")]), 422, "validation-failed"),
        (json.dumps({"events": [event("x")], "padding": "x" * (1024 * 1024)}), 413, "content-too-large"),
    ],
    # Stable ids: the bodies carry the collection time, and pytest-xdist workers must collect the same names.
    ids=[
        "malformed-json",
        "key-only",
        "negative-tokens",
        "boolean-tokens",
        "huge-tokens",
        "tenant-in-body",
        "naive-timestamp",
        "bad-tool-name",
        "empty-key",
        "newline-in-key",
        "empty-batch",
        "batch-of-1001",
        "bare-list",
        "over-1-mib",
    ],
)
def test_bad_input_is_a_problem_never_a_500_and_nothing_is_stored(api: Api, cast, priced, body, status, slug):
    response = api.http.post("/api/v1/usage", body, content_type="application/json", **api.headers)
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith(slug)
    assert _rows(cast.acme) == []


def test_a_batch_of_1000_is_accepted_in_one_call(api: Api, cast, priced, django_assert_max_num_queries):
    make_budget(cast.acme, "100000")
    batch = {"events": [event(f"bulk-{i}", inp=10) for i in range(1000)]}
    with django_assert_max_num_queries(12):  # fixed, whatever the batch size
        response = api.post("usage", batch)
    assert response.json()["accepted"] == 1000
    assert UsageEvent.objects.for_tenant(cast.acme).count() == 1000


def test_an_expired_token_is_refused(api: Api, cast, priced):
    issue_token(api.created)
    kid, private = signing.signer("ES256")
    now = int(time.time())
    claims = {
        "iss": conf.issuer(),
        "sub": api.created.client.client_id,
        "aud": conf.default_audience(),
        "exp": now - 1,
        "iat": now - 100,
        "jti": "expired-usage",
        "client_id": api.created.client.client_id,
        "scope": "usage",
        "tid": cast.acme.pk,
    }
    token = jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})
    response = api.http.post("/api/v1/usage", event("x"), content_type="application/json", **bearer(token))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert _rows(cast.acme) == []


def test_a_token_without_the_usage_scope_is_refused(api: Api, cast, priced):
    token = issue_token(api.created, scope="authorize")
    response = api.http.post("/api/v1/usage", event("x"), content_type="application/json", **bearer(token))
    assert response.status_code == 403
    assert response.json()["type"].endswith("insufficient-scope")


def test_a_client_whose_role_lacks_usage_report_is_refused(api: Api, cast, priced):
    from tests.keys.helpers import make_client

    viewer = make_client(tenant=cast.acme, builtin_role="viewer")
    response = api.http.post(
        "/api/v1/usage", event("x"), content_type="application/json", **bearer(issue_token(viewer))
    )
    assert response.status_code == 403
    assert response.json()["permission"] == "usage.report"


def test_redis_down_is_a_503_and_nothing_is_stored(api: Api, cast, priced, settings):
    make_budget(cast.acme, "100")
    settings.BILLING_REDIS_URL = "redis://127.0.0.1:1/0"
    response = api.post("usage", event("while-down"))
    assert response.status_code == 503
    assert response.json()["type"].endswith("budget-unavailable")
    assert _rows(cast.acme) == []
    settings.BILLING_REDIS_URL = "redis://127.0.0.1:6379/5"


def test_without_budgets_usage_needs_no_redis(api: Api, cast, priced, settings):
    settings.BILLING_REDIS_URL = "redis://127.0.0.1:1/0"
    assert api.post("usage", event("no-budget")).json()["accepted"] == 1


def test_an_event_outside_the_time_window_is_rejected_alone(api: Api, cast, priced):
    old = (datetime.now(UTC) - timedelta(days=36)).isoformat()
    ahead = (datetime.now(UTC) + timedelta(minutes=10)).isoformat()
    body = api.post(
        "usage", {"events": [{**event("old"), "timestamp": old}, {**event("ahead"), "timestamp": ahead}, event("ok")]}
    ).json()
    assert [(r["status"], r["reason"]) for r in body["results"]] == [
        ("rejected", "timestamp_out_of_range"),
        ("rejected", "timestamp_out_of_range"),
        ("accepted", None),
    ]
    assert [r.idempotency_key for r in _rows(cast.acme)] == ["ok"]


def test_old_events_may_arrive_late_and_keep_their_timestamp(api: Api, cast, priced):
    when = datetime.now(UTC) - timedelta(days=3)
    api.post("usage", {**event("late"), "timestamp": when.isoformat()})
    (row,) = _rows(cast.acme)
    assert abs((row.occurred_at - when).total_seconds()) < 1
    assert row.received_at > when
