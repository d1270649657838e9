"""The real task path: ``.delay()`` → broker → a real worker → the database.

Uses ``apps.audit.tasks.record_heartbeat`` (it appends a platform audit event)
and waits for the row by polling; there is no result backend.
"""

from __future__ import annotations

import pytest
from celery.result import EagerResult

from apps.audit.models import AuditEvent
from apps.audit.tasks import record_heartbeat
from apps.core import context

pytestmark = pytest.mark.celery


def _heartbeat(note: str) -> AuditEvent | None:
    return AuditEvent.objects.filter(action="system.heartbeat", metadata__note=note).first()


def test_task_travels_through_broker_to_worker(celery_worker, wait_for):
    result = record_heartbeat.delay("through-the-broker")
    assert not isinstance(result, EagerResult)  # really sent, not run inline

    event = wait_for(lambda: _heartbeat("through-the-broker"), message="the worker never wrote the heartbeat")
    assert event.actor_type == "system"
    assert event.actor_display == "worker"
    # Bound by the worker's task_prerun handler: no request enqueued it, so the task id is the correlation id.
    assert event.request_id == result.id


def test_request_id_follows_the_task(celery_worker, wait_for):
    with context.bind(request_id="web-request-0123456789"):
        record_heartbeat.delay("correlated")
    event = wait_for(lambda: _heartbeat("correlated"))
    assert event.request_id == "web-request-0123456789"


def test_several_tasks_are_all_processed(celery_worker, wait_for):
    for n in range(5):
        record_heartbeat.delay(f"batch-{n}")
    batch = AuditEvent.objects.filter(action="system.heartbeat", metadata__note__startswith="batch-")
    wait_for(lambda: batch.count() == 5)


def test_eager_mode_is_back_after_the_worker_fixture(db):
    """Other tests keep running tasks inline (test settings)."""
    from config.celery import app

    assert app.conf.task_always_eager is True
    assert isinstance(record_heartbeat.delay("inline"), EagerResult)


def test_beat_task_seal_audit_chains_runs_on_the_worker(celery_worker, wait_for, cast):
    """The periodic audit seal (config/celery.py's beat schedule) through the broker and worker."""
    from apps.audit.models import AuditSeal
    from apps.audit.services import record
    from apps.audit.tasks import seal_audit_chains
    from config.celery import app

    assert app.conf.beat_schedule["audit-seal-chains"]["task"] == seal_audit_chains.name
    record("test.event", tenant=cast.acme, metadata={"n": 1})
    chains = set(AuditEvent.objects.values_list("chain", flat=True))

    result = seal_audit_chains.delay()
    assert not isinstance(result, EagerResult)
    wait_for(lambda: set(AuditSeal.objects.values_list("chain", flat=True)) >= chains)
    assert AuditSeal.objects.filter(chain=cast.acme.pk).exists()
