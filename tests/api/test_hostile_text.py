"""Text PostgreSQL cannot store (NUL), JSON it cannot decode (lone surrogates) and overlong strings, on every
endpoint that takes text: a 4xx problem document naming the field, never a 500, nothing stored."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from apps.billing.models import Reservation, UsageEvent
from tests.api.conftest import Api
from tests.billing.metering_helpers import _clean_budget_counters, make_priced  # noqa: F401

NUL = "\u0000"
LONE = "\ud800"  # a lone surrogate: not UTF-8; json.dumps writes it as the escape \\ud800


def _now() -> str:
    return datetime.now(UTC).isoformat()


def member(email: str) -> dict:
    return {"type": "member", "email": email}


def usage(**over: object) -> dict:
    return {"idempotency_key": "k1", "model": "openai/gpt-test", "input_tokens": 1, "output_tokens": 0,
            "timestamp": _now(), **over}  # fmt: skip


# (endpoint, body with a placeholder X where the hostile text goes)
CASES = {
    "authorize-email": ("authorize", lambda x: {"subject": member(f"a{x}@acme.example"), "action": "tenant.view"}),
    "authorize-resource": (
        "authorize",
        lambda x: {
            "subject": {"type": "client"},
            "action": "dataset.read",
            "resource": {"type": "dataset", "id": f"d{x}"},
        },
    ),
    "batch-email": (
        "authorize/batch",
        lambda x: {"checks": [{"subject": member(f"a{x}@acme.example"), "action": "tenant.view"}]},
    ),
    "tool-check-tool": ("tool-calls/check", lambda x: {"subject": {"type": "client"}, "tool_id": f"t{x}"}),
    "tool-check-arguments": (
        "tool-calls/check",
        lambda x: {"subject": {"type": "client"}, "tool_id": "search", "arguments": {f"k{x}": f"v{x}"}},
    ),
    "tool-check-output": (
        "tool-calls/check",
        lambda x: {"subject": {"type": "client"}, "tool_id": "search", "output": f"o{x}"},
    ),
    "tool-check-dataset": (
        "tool-calls/check",
        lambda x: {"subject": {"type": "client"}, "tool_id": "search", "datasets": [f"d{x}"]},
    ),
    "usage-model": ("usage", lambda x: usage(model=f"openai/gpt{x}")),
    "usage-key": ("usage", lambda x: usage(idempotency_key=f"k{x}")),
    "usage-member": ("usage", lambda x: usage(subject=member(f"a{x}@acme.example"))),
    "usage-batch": ("usage", lambda x: {"events": [usage(), usage(idempotency_key="k2", model=f"m{x}")]}),
    "usage-reservation": ("usage", lambda x: usage(reservation_id=f"r{x}")),
    "guard-model": ("guard", lambda x: {"model": f"openai/gpt{x}"}),
    "guard-member": ("guard", lambda x: {"model": "openai/gpt-test", "subject": member(f"a{x}@acme.example")}),
    "guard-reservation": ("guard", lambda x: {"model": "openai/gpt-test", "reservation_id": f"r{x}"}),
    "reserve-model": ("budget/reservations", lambda x: {"estimated_cost": "1", "model": f"m{x}"}),
    "reserve-member": (
        "budget/reservations",
        lambda x: {"estimated_cost": "1", "subject": member(f"a{x}@acme.example")},
    ),
    "reserve-cost": ("budget/reservations", lambda x: {"estimated_cost": f"1{x}"}),
    "settle-cost": (
        "budget/reservations/00000000-0000-0000-0000-000000000000/settle",
        lambda x: {"actual_cost": f"1{x}"},
    ),
}


@pytest.fixture
def priced(cast):
    return make_priced(cast.acme, cast.globex)


def _nothing_stored(cast) -> None:
    assert UsageEvent.objects.for_tenant(cast.acme).count() == 0
    assert Reservation.objects.for_tenant(cast.acme).count() == 0


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_nul_character_is_a_422_naming_the_field(api: Api, cast, priced, case) -> None:
    path, body = CASES[case]
    response = api.post(path, body(NUL))
    assert response.status_code in (400, 422), response.content
    assert response["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    if response.status_code == 422:
        assert problem["errors"], problem
    _nothing_stored(cast)


def test_the_nul_answer_names_where_the_nul_is(api: Api, cast, priced) -> None:
    response = api.post("authorize/batch", CASES["batch-email"][1](NUL))
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["loc"] == ["checks", "0", "subject", "email"]
    assert error["type"] == "string_nul"


def test_an_escaped_backslash_before_u0000_is_text_not_nul(api: Api, cast, priced) -> None:
    # "\\u0000" in JSON is the six characters \u0000: no NUL, an ordinary unknown member.
    body = json.dumps({"subject": member("a\\u0000@acme.example"), "action": "tenant.view"})
    response = api.http.post("/api/v1/authorize", body, content_type="application/json", **api.headers)
    assert response.status_code == 200
    assert response.json()["allowed"] is False


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_lone_surrogate_is_a_400(api: Api, cast, priced, case) -> None:
    path, body = CASES[case]
    raw = json.dumps(body(LONE))  # ensure_ascii: the escape \ud800, which is not valid UTF-16 on its own
    response = api.http.post(f"/api/v1/{path}", raw, content_type="application/json", **api.headers)
    assert response.status_code in (400, 422), response.content
    assert response["Content-Type"].startswith("application/problem+json")
    _nothing_stored(cast)


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_overlong_string_is_a_4xx(api: Api, cast, priced, case) -> None:
    path, body = CASES[case]
    response = api.post(path, body("x" * 200_000))
    # Tool arguments and output are free-form (bounded by the body cap); every other string has a length limit.
    free_form = case in {"tool-check-arguments", "tool-check-output"}
    assert 400 <= response.status_code < 500 or (free_form and response.status_code == 200), response.content
    _nothing_stored(cast)


@pytest.mark.parametrize("suffix", ["settle", "release"])
@pytest.mark.parametrize("ident", ["%00", "a%00b", "%ED%A0%80", "x" * 5000])
def test_hostile_reservation_ids_in_the_path_are_404(api: Api, cast, priced, suffix, ident) -> None:
    body = {"actual_cost": "1"} if suffix == "settle" else {}
    response = api.post(f"budget/reservations/{ident}/{suffix}", body)
    assert response.status_code == 404, response.content
    assert response["Content-Type"].startswith("application/problem+json")
