"""The usage and budget pages in a real browser: the SVG chart draws under the strict CSP, forms work.

Run with SCREENSHOT_DIR=… to keep the pictures (meter-usage.png, meter-usage-by-client.png,
meter-budgets.png, meter-budget-form.png).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import expect

from apps.billing.metering import UsageIn, usage_ingest
from apps.billing.tasks import rollup_usage
from apps.catalog.models import AIModel
from tests.billing.metering_helpers import (  # noqa: F401
    _clean_budget_counters,
    builtin_role,
    make_budget,
    make_priced,
)
from tests.e2e.helpers import shot, signed_in_context
from tests.keys.helpers import make_client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _seed(cast) -> None:
    make_priced(cast.acme, cast.globex)
    AIModel.objects.create(
        tenant=cast.acme,
        provider="anthropic",
        model_name="claude-haiku",
        price_per_1k_input=0.25,
        price_per_1k_output=1.25,
        enabled=True,
    )
    support = make_client(tenant=cast.acme, builtin_role="developer", name="support-bot").client
    search = make_client(tenant=cast.acme, builtin_role="analyst", name="search-indexer").client
    make_budget(cast.acme, "400", name="Acme monthly", soft_percent=80)
    make_budget(cast.acme, "120", name="Support bot", scope="client", client=support, per_minute="50")
    make_budget(cast.acme, "90", name="Analysts", scope="role", role=builtin_role(cast.acme, "analyst"))
    now = datetime.now(UTC)
    for day in range(21):
        when = now - timedelta(days=day, hours=1)
        usage_ingest(
            tenant=cast.acme,
            client=support,
            events=[
                UsageIn(f"s{day}", "openai/gpt-test", 2000 + 300 * (day % 5), 900, when),
                UsageIn(f"h{day}", "anthropic/claude-haiku", 12000 + 500 * (day % 7), 3000, when),
            ],
        )
        if day % 2 == 0:
            usage_ingest(
                tenant=cast.acme,
                client=search,
                events=[UsageIn(f"x{day}", "anthropic/claude-haiku", 30000, 0, when)],
            )
    rollup_usage()


def test_usage_and_budget_pages(live_server, browser, screenshot_dir, cast) -> None:
    _seed(cast)
    page = signed_in_context(browser, live_server, cast.owner).new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{live_server.url}/t/acme/billing/usage/")
    expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
    expect(page.locator("svg.usage-svg rect").first).to_be_visible()
    shot(page, screenshot_dir, "meter-usage")
    page.get_by_label("Group", exact=True).select_option("client")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("cell", name="support-bot")).to_be_visible()
    shot(page, screenshot_dir, "meter-usage-by-client")
    page.goto(f"{live_server.url}/t/acme/billing/budgets/")
    expect(page.get_by_role("cell", name="Support bot")).to_be_visible()
    shot(page, screenshot_dir, "meter-budgets")
    page.get_by_role("link", name="New budget").click()
    page.get_by_label("Name", exact=True).fill("Developers")
    page.get_by_label("Scope", exact=True).select_option("role")
    page.get_by_label("Monthly limit (EUR)").fill("250")
    page.get_by_role("button", name="Create budget").click()
    expect(page.get_by_text("Choose the role this budget is for.")).to_be_visible()
    shot(page, screenshot_dir, "meter-budget-form")
    assert not [e for e in errors if "Content Security Policy" in e], errors
