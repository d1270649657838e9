"""Soft and hard budget alerts: raised once per period, e-mailed by a real worker to the billing managers, audited."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core import mail

from apps.audit.models import AuditEvent
from apps.billing.budgets import alert_raise, period_of
from apps.billing.metering import UsageIn, usage_ingest
from apps.billing.models import BudgetAlert
from tests.billing.metering_helpers import _clean_budget_counters, make_budget, make_priced  # noqa: F401
from tests.keys.helpers import make_client


def _spend(cast, client, key: str, euros: int):
    return usage_ingest(
        tenant=cast.acme,
        client=client,
        events=[UsageIn(key, "openai/gpt-test", euros * 1000, 0, datetime.now(UTC))],
    )


def test_the_soft_alert_goes_out_once_per_period_and_the_hard_one_once_too(celery_worker, cast, wait_for):
    make_priced(cast.acme, cast.globex)
    client = make_client(tenant=cast.acme, builtin_role="developer").client
    budget = make_budget(cast.acme, "10", name="Acme monthly", soft_percent=80)
    mail.outbox.clear()
    _spend(cast, client, "a", 7)  # 70 %: nothing
    _spend(cast, client, "b", 1)  # 80 %: the soft alert
    alert = wait_for(lambda: BudgetAlert.objects.filter(budget=budget, kind="soft", notified_at__isnull=False).first())
    assert alert.spent == 8
    soft_mails = [m for m in mail.outbox if "Acme monthly" in m.subject]
    assert [m.to for m in soft_mails] == [["owner@acme.example"]]  # the one member holding billing.manage
    assert "80 %" in soft_mails[0].subject
    _spend(cast, client, "c", 1)  # 90 %: already alerted this period
    result = _spend(cast, client, "d", 5)  # over the hard limit: denied, the hard alert
    assert result.outcomes[0].status == "denied"
    wait_for(lambda: BudgetAlert.objects.filter(budget=budget, kind="hard", notified_at__isnull=False).exists())
    _spend(cast, client, "e", 5)  # denied again: no second hard alert
    assert alert_raise(budget_id=budget.pk, period=period_of(datetime.now(UTC)), kind="soft") is None
    assert BudgetAlert.objects.filter(budget=budget).count() == 2
    wait_for(lambda: len([m for m in mail.outbox if "Acme monthly" in m.subject]) >= 2)
    assert len([m for m in mail.outbox if "Acme monthly" in m.subject]) == 2
    assert AuditEvent.objects.filter(action="budget.alert", tenant_id=cast.acme.pk).count() == 2
