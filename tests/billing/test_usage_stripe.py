"""Usage reported to Stripe as meter events, against a loopback fake of Stripe's HTTP API (the real SDK, real HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from apps.billing.metering import UsageIn, usage_ingest
from apps.billing.models import StripeCustomer, UsageEvent
from apps.billing.tasks import report_usage_to_stripe
from tests.billing import fake_stripe as fakes
from tests.billing.metering_helpers import _clean_budget_counters, make_budget, make_priced  # noqa: F401
from tests.keys.helpers import make_client


class MeterFake(fakes.FakeStripe):
    """Adds ``POST /v1/billing/meter_events``; Stripe keeps one event per identifier."""

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        if method == "POST" and path == "/v1/billing/meter_events":
            return 200, {
                "object": "billing.meter_event",
                "created": 1733400000,
                "event_name": form.get("event_name"),
                "identifier": form.get("identifier"),
                "livemode": False,
                "payload": {k[8:-1]: v for k, v in form.items() if k.startswith("payload[")},
                "timestamp": int(form.get("timestamp", "0")),
            }
        return super()._route(method, path, form)

    def identifiers(self) -> list[str]:
        return [c.form["identifier"] for c in self.posts("/v1/billing/meter_events")]


@pytest.fixture
def meter_fake(monkeypatch):
    monkeypatch.setattr(fakes, "FakeStripe", MeterFake)
    yield from fakes.fake_stripe_fixture.__wrapped__()


def _ingest(cast):
    make_priced(cast.acme, cast.globex)
    client = make_client(tenant=cast.acme, builtin_role="developer").client
    make_budget(cast.acme, "2.5")
    now = datetime.now(UTC)
    usage_ingest(
        tenant=cast.acme,
        client=client,
        events=[
            UsageIn("e1", "openai/gpt-test", 1000, 0, now),
            UsageIn("e2", "openai/gpt-test", 500, 250, now),
            UsageIn("e3", "openai/gpt-test", 5000, 0, now),  # denied by the budget: never billed
        ],
    )
    usage_ingest(tenant=cast.globex, client=None, events=[UsageIn("g1", "openai/gpt-test", 10, 0, now)])


def test_accepted_usage_goes_to_stripe_once_with_our_event_id(cast, meter_fake):
    _ingest(cast)
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_test_acme")
    assert report_usage_to_stripe() == 2
    e1, e2 = UsageEvent.objects.for_tenant(cast.acme).filter(status="accepted").order_by("pk")
    calls = meter_fake.posts("/v1/billing/meter_events")
    assert [c.form["identifier"] for c in calls] == [f"bastion-usage-{e1.pk}", f"bastion-usage-{e2.pk}"]
    assert calls[0].form["event_name"] == "bastion_tokens"
    assert calls[0].form["payload[stripe_customer_id]"] == "cus_test_acme"
    assert [c.form["payload[value]"] for c in calls] == ["1000", "750"]
    assert calls[0].headers["idempotency-key"] == f"bastion-usage-{e1.pk}"
    assert calls[0].headers["authorization"] == f"Bearer {fakes.SECRET_KEY}"
    assert report_usage_to_stripe() == 0  # marked: nothing is sent twice
    assert len(calls) == len(meter_fake.posts("/v1/billing/meter_events"))
    # Globex has no Stripe customer: its usage stays unreported.
    assert UsageEvent.objects.for_tenant(cast.globex).get().stripe_reported_at is None


def test_a_refusal_leaves_the_rest_for_the_next_run_and_a_resend_keeps_the_identifier(cast, meter_fake):
    _ingest(cast)
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_test_acme")
    meter_fake.fail_next = (400, {"error": {"type": "invalid_request_error", "message": "no such meter"}})
    assert report_usage_to_stripe() == 0
    assert UsageEvent.objects.for_tenant(cast.acme).filter(stripe_reported_at__isnull=False).count() == 0
    assert report_usage_to_stripe() == 2
    # A crash after Stripe answered and before our commit: the next run sends the same identifiers again.
    UsageEvent.objects.for_tenant(cast.acme).update(stripe_reported_at=None)
    assert report_usage_to_stripe() == 2
    sent = meter_fake.identifiers()
    assert len(set(sent)) == 2  # Stripe dedupes by identifier: two events, whatever the resends


def test_without_a_stripe_key_nothing_is_sent(cast, settings):
    _ingest(cast)
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_test_acme")
    settings.STRIPE_SECRET_KEY = ""
    assert report_usage_to_stripe() == 0
