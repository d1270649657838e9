"""Faults found in review: names that break e-mail headers, unexpected send errors, rules that could never fire."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from apps.accounts.services import record_sign_in_failure
from apps.alerts import tasks
from apps.alerts.models import Alert, AlertRule, Delivery, DeliveryAttempt, Metric
from apps.alerts.services import delivery as delivery_service
from apps.alerts.services import evaluation, fraud
from apps.alerts.usage import BillingUsage, Totals
from tests.alerts.helpers import threshold_rule

pytestmark = pytest.mark.django_db


def _open_alert(cast, *, name: str) -> Delivery:
    rule = threshold_rule(
        cast.acme, Metric.SIGN_IN_FAILURES, threshold="1", min_volume=1, name=name, email_recipients=["soc@acme.io"]
    )
    record_sign_in_failure(identifier=cast.member.email)
    record_sign_in_failure(identifier=cast.member.email)
    raised = evaluation.rule_evaluate(rule_id=rule.pk)
    assert raised is not None
    assert raised.created
    return Delivery.objects.get(alert=raised.row, channel=Delivery.Channel.EMAIL)


def test_a_rule_name_with_a_line_break_still_sends_its_email(cast) -> None:
    # A form field keeps inner line breaks; the alert's title (and the e-mail subject) inherit them.
    pending = _open_alert(cast, name="Spend\r\nBcc: attacker@evil.example")
    outcome = delivery_service.delivery_attempt(delivery_id=pending.pk)
    assert outcome.ok
    sent = mail.outbox[-1]
    assert "\n" not in sent.subject
    assert "\r" not in sent.subject
    assert sent.bcc == []
    assert sent.to == ["soc@acme.io"]
    assert Delivery.objects.get(pk=pending.pk).status == Delivery.Status.DELIVERED


def test_an_unexpected_error_while_sending_is_an_attempt_not_a_stuck_row(cast, monkeypatch, settings) -> None:
    settings.ALERTS_DELIVERY_MAX_ATTEMPTS = 2
    pending = _open_alert(cast, name="Sign-ins")

    def broken(*args, **kwargs):
        raise RuntimeError("boom: not for the log table")

    monkeypatch.setattr(delivery_service, "send_mail", broken)
    first = delivery_service.delivery_attempt(delivery_id=pending.pk)
    assert (first.claimed, first.ok) == (True, False)
    assert first.retry_in is not None
    row = Delivery.objects.get(pk=pending.pk)
    assert row.status == Delivery.Status.RETRYING  # not left "sending" until a lease runs out, forever
    Delivery.objects.filter(pk=row.pk).update(next_attempt_at=row.created_at)
    delivery_service.delivery_attempt(delivery_id=pending.pk)
    row.refresh_from_db()
    assert (row.status, row.attempts) == (Delivery.Status.FAILED, 2)
    errors = list(DeliveryAttempt.objects.filter(delivery=row).values_list("error", flat=True))
    assert len(errors) == 2
    assert all("RuntimeError" in e and "boom" not in e for e in errors)


@pytest.mark.parametrize("threshold", ["100", "250.5"])
def test_a_tool_error_rate_threshold_of_100_percent_or_more_is_a_form_error(cast, client_for, threshold) -> None:
    # The rate never exceeds 100 %, so the rule would never fire: say so instead of saving a dead rule.
    response = client_for(cast.owner).post(
        reverse("alerts:rule_create", kwargs={"tenant_slug": "acme"}),
        {
            "name": "Tool errors",
            "metric": Metric.TOOL_ERROR_RATE,
            "mode": "threshold",
            "threshold": threshold,
            "factor": "3",
            "alpha": "0.3",
            "min_volume": "5",
        },
    )
    assert response.status_code == 200
    assert "below 100" in response.content.decode()
    assert not AlertRule.objects.for_tenant(cast.acme).exists()


class _HugeUsage(BillingUsage):
    """Usage totals past what the alert columns hold (20 digits, 6 places): a client flooding tokens."""

    def totals(self, *, tenant_id, start, end) -> Totals:
        return Totals(events=50_000, tokens=10**16, cost=Decimal("1e15"), tool_calls=0)


def test_a_value_past_the_columns_still_raises_an_alert(cast) -> None:
    rule = threshold_rule(cast.acme, Metric.TOKENS_PER_HOUR, threshold="1000", min_volume=1)
    raised = evaluation.rule_evaluate(rule_id=rule.pk, usage=_HugeUsage())
    assert raised is not None
    assert raised.created
    rule.refresh_from_db()
    assert rule.last_value is not None
    assert raised.row.observed >= Decimal("99999999999999")


def test_one_failing_rule_does_not_stop_the_others_or_the_screening(cast, monkeypatch) -> None:
    broken = threshold_rule(cast.acme, Metric.SPEND_PER_HOUR, threshold="1", min_volume=1, name="A broken")
    working = threshold_rule(cast.acme, Metric.SIGN_IN_FAILURES, threshold="1", min_volume=1, name="B works")
    record_sign_in_failure(identifier=cast.member.email)
    record_sign_in_failure(identifier=cast.member.email)
    real = evaluation.rule_evaluate
    screened: list[int] = []

    def flaky(*, rule_id, **kwargs):
        if rule_id == broken.pk:
            raise RuntimeError("a fault in one rule")
        return real(rule_id=rule_id, **kwargs)

    monkeypatch.setattr(evaluation, "rule_evaluate", flaky)
    monkeypatch.setattr(fraud, "tenant_screen", lambda *, tenant_id: screened.append(tenant_id) or [])
    with pytest.raises(RuntimeError):  # the task still fails, so the fault shows in the worker's log and result
        tasks.evaluate_tenant(cast.acme.pk)
    assert Alert.objects.for_tenant(cast.acme).filter(rule=working).exists()
    assert screened == [cast.acme.pk]
