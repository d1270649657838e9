"""Each anomaly metric raises exactly one alert (de-duplicated while open) and none under its minimum volume."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.access.decisions import authorize
from apps.access.models import DeniedDecision
from apps.accounts.services import record_sign_in_failure
from apps.alerts.models import Alert, AlertRule, Delivery, Metric
from apps.alerts.services import evaluation, lifecycle, rules
from apps.audit.models import AuditEvent
from apps.catalog.models import Tool
from apps.guardrails.services import check_tool_call
from apps.tenants.models import Membership
from tests.alerts.helpers import hours_ago, threshold_rule, usage
from tests.keys.helpers import make_client

pytestmark = pytest.mark.django_db


def _alerts(tenant):
    return Alert.objects.for_tenant(tenant)


def _member(cast, user):
    return Membership.objects.get(tenant=cast.acme, user=user)


def test_sign_in_failures_raise_one_alert_and_count_repeats(cast, django_capture_on_commit_callbacks) -> None:
    rule = threshold_rule(
        cast.acme, Metric.SIGN_IN_FAILURES, threshold="3", min_volume=4, email_recipients=["soc@acme.example"]
    )
    for _ in range(3):
        record_sign_in_failure(identifier=cast.member.email)
    assert evaluation.rule_evaluate(rule_id=rule.pk) is None  # 3 failures: under the minimum volume of 4
    record_sign_in_failure(identifier=cast.member.email)
    with django_capture_on_commit_callbacks(execute=True):  # the e-mail task runs eagerly on commit
        raised = evaluation.rule_evaluate(rule_id=rule.pk)
    assert raised is not None
    assert raised.created
    with django_capture_on_commit_callbacks(execute=True):
        again = evaluation.rule_evaluate(rule_id=rule.pk)
    assert again is not None
    assert not again.created
    assert again.row.pk == raised.row.pk
    alert = _alerts(cast.acme).get()
    assert (alert.status, alert.occurrences, alert.observed) == ("open", 2, Decimal(4))
    delivery = Delivery.objects.get(alert=alert)  # notified once, when it opened
    assert (delivery.status, delivery.attempts) == ("delivered", 1)
    assert len(mail.outbox) == 1
    assert "soc@acme.example" in mail.outbox[0].to
    assert AuditEvent.objects.filter(tenant=cast.acme, action="alert.open").count() == 1
    # Another tenant's failures do not count for Acme, and Globex gets nothing.
    assert not _alerts(cast.globex).exists()


def test_a_resolved_alert_lets_the_next_anomaly_open_a_new_one(cast) -> None:
    rule = threshold_rule(cast.acme, Metric.SIGN_IN_FAILURES, threshold="1", min_volume=1)
    record_sign_in_failure(identifier=cast.member.email)
    record_sign_in_failure(identifier=cast.member.email)
    first = evaluation.rule_evaluate(rule_id=rule.pk).row
    owner = _member(cast, cast.owner)
    lifecycle.alert_acknowledge(alert=first, actor=owner)
    assert not evaluation.rule_evaluate(rule_id=rule.pk).created  # acknowledged still de-duplicates
    lifecycle.alert_resolve(alert=first, actor=owner)
    with pytest.raises(ValidationError):
        lifecycle.alert_resolve(alert=first, actor=owner)
    second = evaluation.rule_evaluate(rule_id=rule.pk)
    assert second.created
    assert second.row.pk != first.pk
    assert list(_alerts(cast.acme).values_list("status", flat=True).order_by("pk")) == ["resolved", "open"]
    assert AuditEvent.objects.filter(tenant=cast.acme, action__in=["alert.acknowledge", "alert.resolve"]).count() == 2


def test_denied_checks_per_hour(cast) -> None:
    viewer = _member(cast, cast.viewer)
    rule = threshold_rule(cast.acme, Metric.DENIED_CHECKS, threshold="4", min_volume=5)
    for _ in range(4):
        authorize(viewer, "role.manage")
    assert DeniedDecision.objects.for_tenant(cast.acme).count() == 4
    assert evaluation.rule_evaluate(rule_id=rule.pk) is None
    authorize(viewer, "role.manage")
    assert evaluation.rule_evaluate(rule_id=rule.pk).created
    assert _alerts(cast.acme).count() == 1


def test_denied_checks_against_a_learned_baseline(cast) -> None:
    """Two denials an hour for six hours, then 20 in the last one: more than 3× the baseline."""
    viewer = _member(cast, cast.viewer)
    rule = rules.rule_create(
        tenant=cast.acme,
        actor=None,
        name="denials",
        metric=Metric.DENIED_CHECKS,
        mode="baseline",
        factor=Decimal(3),
        alpha=Decimal("0.5"),
        min_volume=5,
    )
    for hour in range(2, 8):
        DeniedDecision.objects.bulk_create(
            [
                DeniedDecision(
                    tenant=cast.acme,
                    subject_type="membership",
                    subject_id=str(viewer.pk),
                    action="role.manage",
                    occurred_at=hours_ago(hour) + timedelta(minutes=1),
                )
                for _ in range(2)
            ]
        )
    assert evaluation.rule_evaluate(rule_id=rule.pk) is None  # quiet, but the baseline learned
    rule.refresh_from_db()
    assert rule.baseline_hours >= 6
    assert Decimal("1.5") <= rule.baseline <= Decimal(2)
    for _ in range(20):
        authorize(viewer, "role.manage")
    raised = evaluation.rule_evaluate(rule_id=rule.pk)
    assert raised.created
    assert raised.row.observed == 20
    assert raised.row.expected <= 6


def test_a_new_baseline_rule_is_quiet_while_it_learns(cast) -> None:
    viewer = _member(cast, cast.viewer)
    rule = rules.rule_create(
        tenant=cast.acme, actor=None, name="d", metric=Metric.DENIED_CHECKS, mode="baseline", min_volume=1
    )
    for _ in range(50):
        authorize(viewer, "role.manage")
    # No history before the last hour: 24 zero hours learned, so the baseline is 0 and 50 is over it...
    raised = evaluation.rule_evaluate(rule_id=rule.pk)
    assert raised is not None
    assert raised.created
    # ...but a rule on a tenant with no hours behind it at all (catch-up capped) still needs its warm-up.
    AlertRule.objects.filter(pk=rule.pk).update(baseline=None, baseline_hours=0, baseline_through=timezone.now())
    lifecycle.alert_resolve(alert=raised.row, actor=_member(cast, cast.owner))
    assert evaluation.rule_evaluate(rule_id=rule.pk) is None


def test_tool_error_rate_from_guardrail_refusals_and_usage(cast) -> None:
    member = _member(cast, cast.member)
    client = make_client(tenant=cast.acme).client
    tool = Tool.objects.create(tenant=cast.acme, name="search", allowlisted=False)
    rule = threshold_rule(cast.acme, Metric.TOOL_ERROR_RATE, threshold="20", min_volume=10)
    usage(cast.acme, client, tool_calls=["search"], n=4)
    for _ in range(2):
        assert not check_tool_call(subject=member, tool=tool, arguments={})  # audited as guardrail.tool_call
    assert evaluation.rule_evaluate(rule_id=rule.pk) is None  # 6 calls: under the minimum volume of 10
    usage(cast.acme, client, tool_calls=["search"], n=4)
    raised = evaluation.rule_evaluate(rule_id=rule.pk)  # 2 refused of 10 = 20 %: not above
    assert raised is None
    check_tool_call(subject=member, tool=tool, arguments={})
    raised = evaluation.rule_evaluate(rule_id=rule.pk)  # 3 of 11 = 27.27 %
    assert raised.created
    assert raised.row.observed == Decimal("27.27")
    assert raised.row.volume == 11


@pytest.mark.parametrize(
    ("metric", "threshold", "expected"),
    [(Metric.SPEND_PER_HOUR, "0.5", "0.6"), (Metric.TOKENS_PER_HOUR, "8000", "9000")],
)
def test_spend_and_tokens_per_hour(cast, metric, threshold, expected) -> None:
    client = make_client(tenant=cast.acme).client
    rule = threshold_rule(cast.acme, metric, threshold=threshold, min_volume=60)
    usage(cast.acme, client, cost="0.01", n=59)
    usage(cast.acme, client, cost="0.01", at=hours_ago(2), n=200)  # outside the window
    usage(cast.globex, make_client(tenant=cast.globex).client, cost="5", n=100)  # another tenant
    assert evaluation.rule_evaluate(rule_id=rule.pk) is None  # 59 events: under the minimum volume
    usage(cast.acme, client, cost="0.01", n=1)
    raised = evaluation.rule_evaluate(rule_id=rule.pk)
    assert raised.created
    assert raised.row.observed == Decimal(expected)
    assert not evaluation.rule_evaluate(rule_id=rule.pk).created  # still open: counted, not raised again
    assert _alerts(cast.acme).count() == 1


@pytest.mark.parametrize("bad", ["0", "-1", "-0.0001"])
def test_zero_or_negative_threshold_is_refused_by_the_service(cast, bad) -> None:
    with pytest.raises(ValidationError) as caught:
        threshold_rule(cast.acme, Metric.SPEND_PER_HOUR, threshold=bad)
    assert "threshold" in caught.value.message_dict
    assert not AlertRule.objects.exists()


def test_a_disabled_rule_is_not_evaluated(cast) -> None:
    rule = threshold_rule(cast.acme, Metric.SIGN_IN_FAILURES, threshold="1", enabled=False)
    record_sign_in_failure(identifier=cast.member.email)
    record_sign_in_failure(identifier=cast.member.email)
    assert evaluation.rule_evaluate(rule_id=rule.pk) is None
    assert evaluation.tenant_rule_ids(tenant_id=cast.acme.pk) == []


def test_the_beat_task_evaluates_every_active_tenant(cast, django_capture_on_commit_callbacks) -> None:
    from apps.alerts.tasks import evaluate_all

    for tenant in (cast.acme, cast.globex):
        threshold_rule(tenant, Metric.SIGN_IN_FAILURES, threshold="1", min_volume=1)
    record_sign_in_failure(identifier=cast.member.email)
    record_sign_in_failure(identifier=cast.member.email)
    assert evaluate_all() == 2  # eager in tests: each tenant's evaluation ran inline
    assert _alerts(cast.acme).count() == 1
    assert not _alerts(cast.globex).exists()  # Acme's failed sign-ins are not Globex's


def test_a_lost_task_message_is_picked_up_by_the_sweep(cast, fast_delivery, receiver) -> None:
    """The delivery row is written with the alert; if its task message never arrives, the sweep sends it."""
    from apps.alerts.tasks import sweep_deliveries

    r = receiver([200])
    rules.endpoint_create(tenant=cast.acme, actor=None, name="hook", url=r.url)
    rule = threshold_rule(cast.acme, Metric.SIGN_IN_FAILURES, threshold="1", min_volume=1)
    record_sign_in_failure(identifier=cast.member.email)
    record_sign_in_failure(identifier=cast.member.email)
    evaluation.rule_evaluate(rule_id=rule.pk)  # on_commit never fires in this test: the message is "lost"
    delivery = Delivery.objects.get()
    assert delivery.status == "pending"
    assert sweep_deliveries() == 0  # not yet: the task's own message gets a minute first
    Delivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=2))
    assert sweep_deliveries() == 1
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, len(r.received)) == ("delivered", 1, 1)
