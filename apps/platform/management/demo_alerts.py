"""Demo alerts for Acme (#13 item 4, #12 item 7): three rules, an open alert, fraud screening on.

Through the services, as an admin and the scheduler would have done it: the
rules are created (audited), six failed sign-ins for dev@acme.example are
recorded the way the sign-in form records them, and the rule is evaluated once,
which opens the alert (audited as ``alert.open``) and queues its e-mail to the
admin (the dev e-mail backend prints it). Idempotent: with the sign-in rule
already there, nothing is done.
"""

from __future__ import annotations

from decimal import Decimal

from apps.accounts.services import record_sign_in_failure
from apps.alerts import selectors as alert_selectors
from apps.alerts.models import AlertRule, Metric
from apps.alerts.services import evaluation, rules
from apps.alerts.services.fraud import policy_for
from apps.tenants import selectors as tenant_selectors

SIGN_IN_RULE = "Failed sign-ins"


def seed_alerts() -> list[str]:
    acme = tenant_selectors.tenant_get(slug="acme")
    if acme is None or alert_selectors.rule_list(tenant=acme).filter(name=SIGN_IN_RULE).exists():
        return []
    rule = rules.rule_create(
        tenant=acme,
        actor=None,
        name=SIGN_IN_RULE,
        metric=Metric.SIGN_IN_FAILURES,
        mode=AlertRule.Mode.THRESHOLD,
        threshold=Decimal(5),
        min_volume=5,
        email_recipients=["admin@acme.example"],
    )
    rules.rule_create(
        tenant=acme,
        actor=None,
        name="Spend surge",
        metric=Metric.SPEND_PER_HOUR,
        mode=AlertRule.Mode.BASELINE,
        factor=Decimal(3),
        min_volume=20,
    )
    rules.rule_create(
        tenant=acme,
        actor=None,
        name="Tool errors",
        metric=Metric.TOOL_ERROR_RATE,
        mode=AlertRule.Mode.THRESHOLD,
        threshold=Decimal(25),
        min_volume=20,
    )
    policy_for(tenant=acme)  # fraud screening with the default thresholds
    for _ in range(6):
        record_sign_in_failure(identifier="dev@acme.example", reason="bad_password")
    raised = evaluation.rule_evaluate(rule_id=rule.pk)
    lines = ["Acme alert rules: failed sign-ins, spend surge, tool errors; fraud screening on"]
    if raised is not None:
        lines.append(f"Acme open alert: {raised.row.title}")
    return lines
