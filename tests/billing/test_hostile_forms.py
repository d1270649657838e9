"""Billing pages and forms with text PostgreSQL cannot store (NUL), overlong text and absurd numbers:
a form error or a 4xx, never a 500, nothing written."""

from __future__ import annotations

import pytest

from apps.billing.models import Budget, DunningCase, Plan

NUL = "\x00"
LONG = "x" * 100_000

TENANT_GETS = [
    "/t/acme/billing/?checkout=%00",
    "/t/acme/billing/invoices/?cursor=%00",
    "/t/acme/billing/invoices/?cursor=" + "A" * 5000,
    "/t/acme/billing/usage/?days=%00&by=%00",
    "/t/acme/billing/usage/?days=99999999999999999999&by=model",
    "/t/acme/billing/usage/?format=csv&days=%00",
    "/t/acme/billing/budgets/?x=%00",
    "/t/ac%00me/billing/",
    "/t/ac%00me/billing/budgets/",
    "/t/" + "a" * 5000 + "/billing/",
]


@pytest.mark.parametrize("url", TENANT_GETS)
def test_hostile_query_strings_and_slugs_on_tenant_billing_pages(cast, client_for, url) -> None:
    response = client_for(cast.owner).get(url)
    assert response.status_code < 500
    assert response.status_code in (200, 302, 400, 403, 404)


BUDGET_POSTS = {
    "nul-name": {"name": f"a{NUL}b"},
    "long-name": {"name": LONG},
    "nul-amount": {"amount": f"1{NUL}"},
    "huge-amount": {"amount": "1e308"},
    "nan-amount": {"amount": "NaN"},
    "inf-amount": {"amount": "Infinity"},
    "negative-amount": {"amount": "-5"},
    "many-digits": {"amount": "1" * 40},
    "nul-scope": {"scope": f"tenant{NUL}"},
    "nul-role": {"scope": "role", "role": f"1{NUL}"},
    "nul-client": {"scope": "client", "client": NUL},
    "huge-role": {"scope": "role", "role": "9" * 30},
    "nul-percent": {"soft_percent": NUL},
    "huge-per-minute": {"per_minute": "9" * 30},
}


@pytest.mark.parametrize("case", sorted(BUDGET_POSTS))
def test_hostile_budget_form_input_is_a_form_error(cast, client_for, case) -> None:
    data = {"name": "Cap", "scope": "tenant", "amount": "100", "soft_percent": "80", **BUDGET_POSTS[case]}
    response = client_for(cast.owner).post("/t/acme/billing/budgets/new/", data)
    assert response.status_code == 200  # the form again, with its errors
    assert b"errorlist" in response.content
    assert not Budget.objects.for_tenant(cast.acme).exists()


PLAN_POSTS = {
    "nul-name": {"name": f"T{NUL}"},
    "long-name": {"name": LONG},
    "nul-price": {"stripe_price_id": f"price_{NUL}"},
    "nul-currency": {"currency": f"eu{NUL}"},
    "huge-tokens": {"included_tokens": "9" * 40},
    "nan-limit": {"hard_limit": "NaN"},
    "huge-limit": {"hard_limit": "1e308"},
    "nul-limit": {"soft_limit": NUL},
}


@pytest.mark.parametrize("case", sorted(PLAN_POSTS))
def test_hostile_plan_form_input_is_a_form_error(cast, client_for, case) -> None:
    data = {
        "name": "Team",
        "stripe_price_id": "price_1PgafmB7WZ01zgkW6dKueIc5",
        "included_tokens": "1000",
        "currency": "EUR",
        "seat_price": "20",
        "soft_limit": "10",
        "hard_limit": "20",
        "active": "on",
        **PLAN_POSTS[case],
    }
    response = client_for(cast.staff).post("/platform/billing/plans/new/", data)
    assert response.status_code == 400  # the platform form answers a refused POST with 400 and its errors
    assert b"errorlist" in response.content
    assert not Plan.objects.exists()


@pytest.mark.parametrize(
    ("slug", "data"),
    [
        ("acme", {"days": "3", "reason": f"good{NUL}will"}),
        ("acme", {"days": "3", "reason": LONG}),
        ("acme", {"days": NUL, "reason": "x"}),
        ("ac%00me", {"days": "3", "reason": "x"}),
    ],
)
def test_hostile_grace_extension_input(cast, client_for, slug, data) -> None:
    response = client_for(cast.staff).post(f"/platform/billing/dunning/{slug}/extend/", data)
    assert response.status_code in (200, 302, 400, 404)
    assert not DunningCase.objects.exists()


@pytest.mark.parametrize("page", ["%00", "9" * 40, "-1"])
def test_hostile_page_numbers_on_platform_lists(cast, client_for, page) -> None:
    staff = client_for(cast.staff)
    for url in ("/platform/billing/plans/", "/platform/billing/dunning/"):
        assert staff.get(f"{url}?page={page}").status_code == 200
