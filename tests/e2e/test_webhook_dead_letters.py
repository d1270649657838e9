"""The platform's webhook dead letters in a real browser: both providers listed, replay queues the event again."""

from __future__ import annotations

import pytest

from apps.billing.models import WebhookEvent
from tests.billing.test_webhook_dead_letters import _dead
from tests.e2e.helpers import shot, signed_in_context
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_dead_letters_page_and_replay(live_server, browser, screenshot_dir) -> None:
    staff = UserFactory(email="staff@bastion.example", is_staff=True)
    _dead(1)
    adyen = _dead(2, provider="adyen")
    WebhookEvent.objects.filter(pk=adyen.pk).update(
        status="refused", last_error="merchantReference names unknown tenant 999999"
    )
    context = signed_in_context(browser, live_server, staff)
    page = context.new_page()
    page.goto(f"{live_server.url}/platform/billing/webhooks/")
    assert page.locator("tbody tr").count() == 2
    assert page.get_by_text("evt_dead_adyen_002").is_visible()
    shot(page, screenshot_dir, "billwebhook-dead-letters")
    page.locator("tbody tr").nth(1).get_by_role("button", name="Replay").click()
    page.wait_for_load_state()
    assert page.get_by_text("queued again").is_visible()
    # Back in the queue (the tests run tasks inline: it was tried at once, and failed again on its empty payload).
    assert WebhookEvent.objects.get(pk=adyen.pk).status in ("pending", "failed")
    assert page.locator("tbody tr").count() == 1
    shot(page, screenshot_dir, "billwebhook-dead-letters-replayed")
    context.close()
