"""The usage page (chart, totals, CSV) and the budget pages (list, create, edit, delete; audited)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.billing.metering import UsageIn, usage_ingest
from apps.billing.models import Budget
from apps.billing.tasks import rollup_usage
from tests.billing.metering_helpers import _clean_budget_counters, builtin_role, make_budget, make_priced  # noqa: F401
from tests.contract import PageContract, PermissionContract, Ref
from tests.keys.helpers import make_client

USAGE = "/t/acme/billing/usage/"
BUDGETS = "/t/acme/billing/budgets/"
BUDGET_POST = {"name": "Team", "scope": "tenant", "amount": "250.00", "soft_percent": "80", "active": "on"}


@pytest.fixture
def world(cast):
    make_priced(cast.acme, cast.globex)
    return SimpleNamespace(
        cast=cast,
        budget=make_budget(cast.acme, "100", name="Acme devs", scope="role", role=builtin_role(cast.acme, "developer")),
        globex_budget=make_budget(cast.globex, "5", name="Globex monthly"),
    )


class TestUsagePagesContract(PermissionContract):
    app_namespace = "billing_usage"
    contracts = (
        PageContract("billing_usage:usage", "billing.view"),
        PageContract("billing_usage:budget_list", "billing.view"),
        PageContract("billing_usage:budget_create", "billing.manage", method="post", data=BUDGET_POST, ok_status=302),
        PageContract(
            "billing_usage:budget_edit",
            "billing.manage",
            kwargs={"pk": Ref("budget")},
            method="post",
            data={**BUDGET_POST, "name": "Renamed"},
            ok_status=302,
            foreign=({"pk": Ref("globex_budget")},),
        ),
        PageContract(
            "billing_usage:budget_delete",
            "billing.manage",
            kwargs={"pk": Ref("budget")},
            method="post",
            ok_status=302,
            foreign=({"pk": Ref("globex_budget")},),
        ),
    )

    @pytest.fixture
    def contract_world(self, world):
        return world

    def state(self, world):
        return (super().state(world), tuple(Budget.objects.order_by("pk").values_list("name", "amount")))


def _usage(cast):
    alpha = make_client(tenant=cast.acme, builtin_role="developer", name="=cmd|' /C calc'!A0").client
    now = datetime.now(UTC)
    usage_ingest(
        tenant=cast.acme,
        client=alpha,
        events=[
            UsageIn("u1", "openai/gpt-test", 3000, 1000, now - timedelta(days=2)),
            UsageIn("u2", "anthropic/big-risky", 100, 0, now - timedelta(days=1)),  # denied: needs preauthorisation
            UsageIn("u3", "openai/gpt-test", 1000, 0, now),
        ],
    )
    rollup_usage()
    return alpha


def test_the_usage_page_charts_cost_and_tokens_by_model_and_by_client(world, client_for):
    _usage(world.cast)
    client = client_for(world.cast.admin)  # billing.view: enough to see, not to manage
    client.get(USAGE + "?by=client")  # warm: the session and permission set load once
    with CaptureQueriesContext(connection) as first:
        client.get(USAGE + "?by=client")
    html = client.get(USAGE).content.decode()
    more = make_client(tenant=world.cast.acme, builtin_role="developer", name="more").client
    usage_ingest(
        tenant=world.cast.acme,
        client=more,
        events=[UsageIn(f"m{i}", "openai/gpt-test", 10, 0, datetime.now(UTC) - timedelta(days=i)) for i in range(9)],
    )
    rollup_usage()
    with CaptureQueriesContext(connection) as second:
        client.get(USAGE + "?by=client")
    assert len(second) == len(first)  # flat, whatever the rows
    assert "<svg" in html
    assert "Cost per day (EUR)" in html
    assert "openai/gpt-test" in html
    assert "6.00 EUR" in html  # 3 + 2 + 1: the denied event is not counted
    assert "anthropic/big-risky" not in html
    assert "style=" not in html  # the strict CSP allows no inline style
    by_client = client.get(USAGE + "?by=client&days=7").content.decode()
    assert "=cmd|" in by_client  # escaped in HTML, shown as the name
    assert client.get(USAGE + "?days=banana&by=%00").status_code == 200  # bad filters fall back


def test_the_csv_has_one_row_per_day_model_and_client_and_defuses_formulas(world, client_for):
    _usage(world.cast)
    response = client_for(world.cast.owner).get(USAGE + "?format=csv")
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert [(r["model"], r["cost"]) for r in rows] == [("openai/gpt-test", "5.000000"), ("openai/gpt-test", "1.000000")]
    assert rows[0]["client_name"].startswith("'=")  # a spreadsheet shows it as text, never runs it


def test_the_usage_page_of_another_tenant_shows_nothing_of_it(world, client_for):
    _usage(world.cast)
    html = client_for(world.cast.globex_owner).get("/t/globex/billing/usage/").content.decode()
    assert "openai/gpt-test" not in html


def test_a_billing_manager_creates_edits_and_deletes_a_budget_audited(world, client_for, cast):
    client = client_for(cast.owner)
    create = reverse("billing_usage:budget_create", kwargs={"tenant_slug": "acme"})
    assert client.post(create, BUDGET_POST).status_code == 302
    response = client.post(create, {**BUDGET_POST, "name": "Another"})
    assert response.status_code == 200  # a second tenant-wide budget is refused with a message
    assert "There is a budget for this already" in response.content.decode()
    developer = make_client(tenant=cast.acme, builtin_role="developer", name="ingest")
    data = {**BUDGET_POST, "name": "Ingest", "scope": "client", "client": developer.client.pk, "per_minute": "2"}
    assert client.post(reverse("billing_usage:budget_create", kwargs={"tenant_slug": "acme"}), data).status_code == 302
    budget = Budget.objects.for_tenant(cast.acme).get(name="Ingest")
    assert (budget.scope, budget.client_id, budget.per_minute) == ("client", developer.client.pk, Decimal("2.00"))
    edit = reverse("billing_usage:budget_edit", kwargs={"tenant_slug": "acme", "pk": budget.pk})
    assert client.post(edit, {**data, "amount": "300", "soft_percent": "90"}).status_code == 302
    budget.refresh_from_db()
    assert (budget.amount, budget.soft_percent) == (Decimal("300.00"), 90)
    change = AuditEvent.objects.filter(action="budget.update").latest("id")
    assert change.metadata["changes"]["amount"] == {"from": "250.00", "to": "300.00"}
    html = client.get(BUDGETS).content.decode()
    assert "Ingest" in html
    assert "2.00/min" in html
    delete = reverse("billing_usage:budget_delete", kwargs={"tenant_slug": "acme", "pk": budget.pk})
    assert client.post(delete).status_code == 302
    assert not Budget.objects.filter(pk=budget.pk).exists()
    assert AuditEvent.objects.filter(action__in=["budget.create", "budget.delete"], tenant_id=cast.acme.pk).count() >= 2


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"scope": "role"}, "role", "Choose the role"),
        ({"scope": "client"}, "client", "Choose the API client"),
        ({"amount": "0"}, "amount", "greater than or equal to 0.01"),
        ({"soft_percent": "150"}, "soft_percent", "less than or equal to 100"),
        ({"amount": "abc"}, "amount", "Enter a number"),
    ],
)
def test_the_budget_form_says_what_is_wrong(world, client_for, cast, data, field, message):
    response = client_for(cast.owner).post(
        reverse("billing_usage:budget_create", kwargs={"tenant_slug": "acme"}), {**BUDGET_POST, "name": "X", **data}
    )
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Budget.objects.filter(name="X").exists()


def test_another_tenants_client_cannot_be_chosen(world, client_for, cast):
    theirs = make_client(tenant=cast.globex, builtin_role="developer").client
    data = {**BUDGET_POST, "name": "Theirs", "scope": "client", "client": theirs.pk}
    response = client_for(cast.owner).post(reverse("billing_usage:budget_create", kwargs={"tenant_slug": "acme"}), data)
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not Budget.objects.filter(name="Theirs").exists()


def test_the_budget_list_shows_standing_and_this_months_alert(world, client_for, cast):
    from apps.billing.budgets import alert_raise, period_of

    client = make_client(tenant=cast.acme, builtin_role="developer").client
    usage_ingest(
        tenant=cast.acme, client=client, events=[UsageIn("big", "openai/gpt-test", 85_000, 0, datetime.now(UTC))]
    )
    alert_raise(budget_id=world.budget.pk, period=period_of(datetime.now(UTC)), kind="soft")
    html = client_for(cast.admin).get(BUDGETS).content.decode()
    assert "85.00" in html
    assert "85 %" in html
    assert "passed 80 %" in html
    assert "New budget" not in html  # the viewer may see, not manage
