"""The runbook in a real browser: mark a line through htmx (no reload), then the print view.

Run with SCREENSHOT_DIR=… to keep the pictures (runbook-detail.png, runbook-print.png).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from apps.access.models import DeniedDecision
from apps.keys.models import Credential
from apps.runbook import services
from apps.runbook.drill import drill_request, drill_run
from apps.runbook.models import RunbookItem
from apps.tenants.models import Membership
from tests.e2e.helpers import shot, signed_in_context
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_staff_drill_page(live_server, browser, screenshot_dir) -> None:
    staff = UserFactory(email="staff@bastion.example", is_staff=True)
    page = signed_in_context(browser, live_server, staff).new_page()
    page.goto(f"{live_server.url}/platform/runbook/drills/")
    expect(page.get_by_role("button", name="Run a restore drill now")).to_be_visible()
    shot(page, screenshot_dir, "runbook-drills")


def test_mark_a_line_with_htmx_and_print(live_server, browser, screenshot_dir) -> None:
    acme = TenantFactory(slug="acme", name="Acme Corp")
    owner_user = UserFactory(email="olivia@acme.example")
    owner = MembershipFactory(tenant=acme, user=owner_user, role=Membership.Role.OWNER)
    dev = MembershipFactory(tenant=acme, user=UserFactory(email="dev@acme.example"), role="developer")
    today = timezone.now().date()
    Credential.objects.create(
        tenant=acme, name="openai-prod", provider="openai", reference="env://OPENAI", next_due_on=today - timedelta(5)
    )
    Credential.objects.create(
        tenant=acme, name="anthropic-prod", provider="anthropic", reference="env://ANTHROPIC", next_due_on=today
    )
    DeniedDecision.objects.bulk_create(
        DeniedDecision(
            tenant=acme,
            occurred_at=timezone.now() - timedelta(days=3),
            subject_type="member",
            subject_id=str(dev.pk),
            subject_display="dev@acme.example",
            action="dataset.read",
        )
        for _ in range(4)
    )
    runbook = services.runbook_open(tenant=acme)
    drill_run(drill_request(via="test").pk)  # a real drill: the line shows its evidence
    line = RunbookItem.objects.for_tenant(acme).get(runbook=runbook, kind="denied")

    errors: list[str] = []
    page = signed_in_context(browser, live_server, owner_user).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("response", lambda response: errors.append(response.url) if response.status >= 400 else None)
    page.goto(f"{live_server.url}/t/acme/runbooks/{runbook.pk}/")
    expect(page.get_by_role("heading", name="Quarterly runbook")).to_be_visible()
    expect(page.get_by_text("passed", exact=False).first).to_be_visible()
    row = page.locator(f"#item-{line.pk}")
    row.get_by_label("Fix").check()
    row.get_by_placeholder("Note (required for “fix”)").fill("Grant dataset.read to the analytics role")
    page.evaluate("window.__marker = 1")  # survives only if the page does not reload
    row.get_by_role("button", name="Save").click()
    expect(page.locator(f"#item-{line.pk} .badge-err")).to_have_text("Fix")
    assert page.evaluate("window.__marker") == 1
    total = RunbookItem.objects.for_tenant(acme).filter(runbook=runbook).count()
    expect(page.locator("#runbook-progress")).to_contain_text(f"1 of {total} lines marked")  # out of band
    line.refresh_from_db()
    assert (line.mark, line.marked_by_id) == ("fix", owner.pk)
    shot(page, screenshot_dir, "runbook-detail")

    page.get_by_role("link", name="Print view").click()
    expect(page.get_by_role("heading", name="Quarterly runbook")).to_be_visible()
    expect(page.get_by_text("Grant dataset.read to the analytics role")).to_be_visible()
    page.emulate_media(media="print")
    expect(page.get_by_text("Back to the runbook")).to_be_hidden()
    shot(page, screenshot_dir, "runbook-print")
    page.emulate_media(media="screen")

    # Retention settings: a value below the platform floor is a form error, nothing saved.
    page.goto(f"{live_server.url}/t/acme/runbooks/retention/edit/")
    page.get_by_label("Audit events (days)").fill("30")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("At least 365 days: the platform does not allow a shorter retention.")).to_be_visible()
    shot(page, screenshot_dir, "runbook-retention-error")
    assert errors == []
