"""Plans platform staff define: list, create, edit; validation, audit, staff only."""

from __future__ import annotations

from decimal import Decimal

import pytest

from apps.audit.models import AuditEvent
from apps.billing.models import Plan

LIST, NEW = "/platform/billing/plans/", "/platform/billing/plans/new/"
VALID = {
    "name": "Team",
    "stripe_price_id": "price_1PgafmB7WZ01zgkW6dKueIc5",
    "included_tokens": "2000000",
    "currency": "EUR",
    "seat_price": "20.00",
    "soft_limit": "400",
    "hard_limit": "500",
    "active": "on",
}


def edit_url(plan: Plan) -> str:
    return f"/platform/billing/plans/{plan.pk}/edit/"


def test_staff_create_a_plan_audited_on_the_platform_chain(cast, client_for) -> None:
    staff = client_for(cast.staff)
    form = staff.get(NEW).content.decode()
    assert "Stripe price id" in form
    assert "Monthly spend beyond which usage is refused" in form  # help text
    response = staff.post(NEW, VALID)
    assert response.status_code == 302
    assert response["Location"] == LIST
    plan = Plan.objects.get()
    assert (plan.name, plan.currency, plan.included_tokens) == ("Team", "eur", 2_000_000)
    assert (plan.seat_price, plan.soft_limit, plan.hard_limit, plan.active) == (
        Decimal("20.00"),
        Decimal("400"),
        Decimal("500"),
        True,
    )
    audit = AuditEvent.objects.get(action="billing.plan_create")
    assert audit.tenant_id is None
    assert audit.metadata["plan"]["stripe_price_id"] == "price_1PgafmB7WZ01zgkW6dKueIc5"
    listing = staff.get(LIST).content.decode()
    assert "Team" in listing
    assert "price_1PgafmB7WZ01zgkW6dKueIc5" in listing


def test_staff_edit_a_plan_and_the_audit_names_what_changed(cast, client_for) -> None:
    staff = client_for(cast.staff)
    staff.post(NEW, VALID)
    plan = Plan.objects.get()
    assert 'value="Team"' in staff.get(edit_url(plan)).content.decode()
    response = staff.post(edit_url(plan), {**VALID, "seat_price": "25.00", "active": ""})
    assert response.status_code == 302
    plan.refresh_from_db()
    assert plan.seat_price == Decimal("25.00")
    assert plan.active is False
    audit = AuditEvent.objects.get(action="billing.plan_update")
    assert audit.metadata["changed"] == {"seat_price": ["20.00", "25.00"], "active": [True, False]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"stripe_price_id": "prod_123"}, "A Stripe price id looks like"),
        ({"stripe_price_id": "price_1; DROP TABLE"}, "A Stripe price id looks like"),
        ({"soft_limit": "600"}, "The soft limit must not be above the hard limit"),
        ({"seat_price": "-1"}, "greater than or equal to 0"),
        ({"currency": "EURO"}, "at most 3 characters"),
        ({"currency": "€€€"}, "three-letter ISO currency code"),
        ({"included_tokens": "lots"}, "Enter a whole number"),
        ({"name": ""}, "This field is required"),
        ({"hard_limit": "1e30"}, "Ensure that there are no more than 12 digits"),
    ],
)
def test_bad_input_is_a_form_error_and_nothing_is_saved(cast, client_for, change, message) -> None:
    response = client_for(cast.staff).post(NEW, {**VALID, **change})
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Plan.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="billing.plan").exists()


def test_a_duplicate_name_or_price_is_a_form_error(cast, client_for) -> None:
    staff = client_for(cast.staff)
    staff.post(NEW, VALID)
    response = staff.post(NEW, {**VALID, "name": "Other"})
    assert response.status_code == 400
    assert "already has this name or Stripe price id" in response.content.decode()
    assert Plan.objects.count() == 1


@pytest.mark.parametrize("who", ["owner", "admin", "globex_owner", "outsider"])
def test_only_staff_reach_the_plan_pages(cast, client_for, who) -> None:
    plan = Plan.objects.create(name="Team", stripe_price_id="price_team", seat_price=10)
    client = client_for(getattr(cast, who))
    for url in (LIST, NEW, edit_url(plan)):
        assert client.get(url).status_code == 404, url
    assert client.post(NEW, VALID).status_code == 404
    assert client.post(edit_url(plan), {**VALID, "name": "Hacked"}).status_code == 404
    assert list(Plan.objects.values_list("name", flat=True)) == ["Team"]


def test_anonymous_is_sent_to_sign_in(db, client) -> None:
    response = client.get(LIST)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


@pytest.mark.parametrize("pk", [0, 999_999, 99_999_999_999_999_999_999])
def test_an_unknown_plan_is_404(cast, client_for, pk) -> None:
    assert client_for(cast.staff).get(f"/platform/billing/plans/{pk}/edit/").status_code == 404


def test_the_platform_nav_links_plans_and_failed_payments(cast, client_for) -> None:
    html = client_for(cast.staff).get(LIST).content.decode()
    assert 'href="/platform/billing/plans/" aria-current="page"' in html
    assert 'href="/platform/billing/dunning/"' in html


def test_a_withdrawn_plan_is_not_offered_to_tenants(cast, client_for) -> None:
    Plan.objects.create(name="Team", stripe_price_id="price_team", seat_price=10)
    Plan.objects.create(name="Legacy", stripe_price_id="price_legacy", seat_price=5, active=False)
    html = client_for(cast.owner).get("/t/acme/billing/").content.decode()
    assert "Team" in html
    assert "Legacy" not in html
