"""Two evaluations of the same rule at the same moment (threads, real PostgreSQL): one alert."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from apps.accounts.services import record_sign_in_failure
from apps.alerts.models import Alert, Delivery, Metric
from apps.alerts.services import evaluation, raising
from tests.alerts.helpers import threshold_rule


def _race(target, n: int = 2) -> list:
    barrier = threading.Barrier(n)
    results: list = []
    errors: list = []

    def run() -> None:
        try:
            barrier.wait()
            results.append(target())
        except Exception as exc:  # noqa: BLE001 -- reported by the assertion below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
def test_two_evaluations_at_once_open_one_alert(cast) -> None:
    rule = threshold_rule(
        cast.acme, Metric.SIGN_IN_FAILURES, threshold="1", min_volume=1, email_recipients=["a@acme.example"]
    )
    record_sign_in_failure(identifier=cast.member.email)
    record_sign_in_failure(identifier=cast.member.email)
    results = _race(lambda: evaluation.rule_evaluate(rule_id=rule.pk), n=4)
    created = [r for r in results if r is not None and r.created]
    assert len(created) == 1
    assert Alert.objects.count() == 1
    assert Delivery.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_the_unique_index_settles_a_raise_that_slips_past_the_lock(cast) -> None:
    """Raising straight from two threads (no rule lock): the partial unique index lets one insert win."""
    rule = threshold_rule(cast.acme, Metric.SIGN_IN_FAILURES, threshold="1")
    now = timezone.now()
    results = _race(
        lambda: raising.alert_raise(rule=rule, observed=Decimal(5), expected=Decimal(1), volume=5, start=now, end=now),
        n=4,
    )
    assert sum(r.created for r in results) == 1
    alert = Alert.objects.get()
    assert alert.occurrences == 4
