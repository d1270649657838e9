"""The alerts pages in a real browser: list, detail and acknowledge, a rule form error, a webhook's
secret shown once, the delivery log with its attempts, the fraud queue and a confirmed case.

Run with SCREENSHOT_DIR=… to keep the pictures (alerts-*.png).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from apps.accounts.services import record_sign_in_failure
from apps.alerts.models import Delivery
from apps.alerts.services import delivery as delivery_services
from apps.alerts.services import evaluation, fraud, rules
from apps.keys.models import ApiClient
from tests.alerts.helpers import threshold_rule, usage
from tests.e2e.helpers import shot, signed_in_context
from tests.keys.helpers import make_client

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _world(cast, receiver_url: str) -> None:
    rule = threshold_rule(
        cast.acme,
        "sign_in_failures_per_hour",
        threshold="3",
        min_volume=3,
        name="Failed sign-ins",
        email_recipients=["soc@acme.example"],
    )
    rules.rule_create(
        tenant=cast.acme, actor=None, name="Spend surge", metric="spend_per_hour", mode="baseline", min_volume=20
    )
    rules.endpoint_create(tenant=cast.acme, actor=None, name="Incident bridge", url=receiver_url, send_fraud=True)
    for _ in range(5):
        record_sign_in_failure(identifier=cast.member.email)
    evaluation.rule_evaluate(rule_id=rule.pk)
    app = make_client(tenant=cast.acme, name="support-bot").client
    rules.fraud_policy_update(policy=fraud.policy_for(tenant=cast.acme), data={"retry_storm_repeats": 5}, actor=None)
    usage(cast.acme, app, prompt_hash="9f2c", n=12)
    fraud.tenant_screen(tenant_id=cast.acme.pk)
    for pk in Delivery.objects.values_list("pk", flat=True):
        delivery_services.delivery_attempt(delivery_id=pk)  # the receiver answers 500 first: one failed attempt logged
        Delivery.objects.filter(pk=pk).update(
            next_attempt_at=Delivery.objects.get(pk=pk).next_attempt_at - timedelta(hours=1)
        )
        delivery_services.delivery_attempt(delivery_id=pk)


def test_alert_pages_walk(live_server, browser, screenshot_dir, cast, fast_delivery, receiver) -> None:
    r = receiver([500])  # the receiver is down: every webhook delivery is retrying, its attempts logged
    _world(cast, r.url)
    errors: list[str] = []
    page = signed_in_context(browser, live_server, cast.owner).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    base = f"{live_server.url}/t/acme"

    page.goto(f"{base}/")
    expect(page.get_by_text("Failed sign-ins: sign-in failures per hour is 5")).to_be_visible()
    shot(page, screenshot_dir, "alerts-dashboard")

    page.goto(f"{base}/alerts/")
    expect(page.get_by_role("link", name="Failed sign-ins: sign-in failures per hour is 5")).to_be_visible()
    shot(page, screenshot_dir, "alerts-list")
    page.get_by_role("link", name="Failed sign-ins: sign-in failures per hour is 5").click()
    page.get_by_role("button", name="Acknowledge").click()
    expect(page.get_by_text("Alert acknowledged.")).to_be_visible()
    shot(page, screenshot_dir, "alerts-detail")

    page.goto(f"{base}/alerts/rules/")
    shot(page, screenshot_dir, "alerts-rules")
    page.goto(f"{base}/alerts/rules/new/")
    page.get_by_label("Name").fill("Token surge")
    page.get_by_label("Mode").select_option("threshold")
    page.get_by_label("Threshold").fill("0")
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_text("The threshold must be greater than zero.")).to_be_visible()
    shot(page, screenshot_dir, "alerts-rule-form-error")

    page.goto(f"{base}/alerts/webhooks/new/")
    page.get_by_label("Name").fill("SIEM")
    page.get_by_label("URL").fill("https://93.184.216.34/bastion")
    page.get_by_role("button", name="Create endpoint").click()
    expect(page.get_by_text("Copy the secret now.")).to_be_visible()
    shot(page, screenshot_dir, "alerts-webhook-secret")
    page.goto(f"{base}/alerts/webhooks/")
    expect(page.get_by_role("link", name="SIEM", exact=True)).to_be_visible()
    shot(page, screenshot_dir, "alerts-webhooks")

    page.goto(f"{base}/alerts/deliveries/")
    shot(page, screenshot_dir, "alerts-deliveries")
    page.goto(f"{base}/alerts/deliveries/?channel=webhook&status=retrying")
    page.get_by_role("link", name="Webhook", exact=True).first.click()
    expect(page.get_by_text("The receiver answered HTTP 500.").first).to_be_visible()
    shot(page, screenshot_dir, "alerts-delivery-detail")

    page.goto(f"{base}/alerts/fraud/")
    expect(page.get_by_text("The same prompt 12 times within one minute")).to_be_visible()
    shot(page, screenshot_dir, "alerts-fraud-list")
    page.get_by_role("link", name="The same prompt 12 times").click()
    page.get_by_label("Note").fill("Scraping our FAQ in a loop")
    page.get_by_label("Disable the API client").check()
    page.get_by_role("button", name="Confirm fraud").click()
    expect(page.get_by_text("Case confirmed. The API client is disabled.")).to_be_visible()
    shot(page, screenshot_dir, "alerts-fraud-case")
    assert ApiClient.objects.get(name="support-bot").status == "disabled"

    page.goto(f"{base}/alerts/fraud/settings/")
    shot(page, screenshot_dir, "alerts-fraud-settings")
    assert errors == []
