"""Beat tasks on the REAL worker: the quarter-start task run twice at once, and a drill queued from the staff page."""

from __future__ import annotations

import threading

import pytest
from celery.signals import task_postrun
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.verification import verify_chain
from apps.runbook import tasks
from apps.runbook.models import DrillResult, Runbook, RunbookItem
from apps.runbook.quarters import quarter_of
from tests.factories import TenantFactory

pytestmark = pytest.mark.usefixtures("no_leftover_scratch")


@pytest.fixture
def finished():
    """Names of tasks the in-process worker finished during the test."""
    done: list[str] = []
    lock = threading.Lock()

    def seen(sender=None, **kwargs):
        with lock:
            done.append(sender.name)

    task_postrun.connect(seen, weak=False)
    yield done
    task_postrun.disconnect(seen)


def test_the_quarter_task_run_twice_at_once_opens_one_runbook_per_tenant(celery_worker, cast, finished, wait_for):
    extra = [TenantFactory() for _ in range(6)]
    suspended = TenantFactory(status="suspended")
    tenants = [cast.acme, cast.globex, *extra]
    tasks.open_quarter_runbooks.delay()
    tasks.open_quarter_runbooks.delay()
    wait_for(lambda: finished.count("apps.runbook.tasks.open_quarter_runbooks") == 2, timeout=60)
    label = quarter_of(timezone.now()).label
    for tenant in tenants:
        assert Runbook.objects.for_tenant(tenant).filter(quarter=label).count() == 1, tenant.slug
        assert AuditEvent.objects.for_tenant(tenant).filter(action="runbook.open").count() == 1, tenant.slug
        runbook = Runbook.objects.for_tenant(tenant).get()
        # One drill line, built once (a second builder would have met the unique (runbook, ref)).
        assert RunbookItem.objects.for_tenant(tenant).filter(runbook=runbook, kind="drill").count() == 1
        assert verify_chain(tenant.pk).ok
    assert not Runbook.objects.for_tenant(suspended).exists()  # suspended tenants get none
    # A third run (the next hour) opens nothing.
    tasks.open_quarter_runbooks.delay()
    wait_for(lambda: finished.count("apps.runbook.tasks.open_quarter_runbooks") == 3, timeout=60)
    assert Runbook.objects.count() == len(tenants)


def test_the_staff_button_queues_a_drill_the_worker_runs(celery_worker, cast, client_for, wait_for, open_at):
    runbook = open_at(cast.acme)
    response = client_for(cast.staff).post("/platform/runbook/drills/run/")
    assert response.status_code == 302
    drill = DrillResult.objects.get()
    assert drill.requested_by == cast.staff
    assert AuditEvent.objects.filter(action="runbook.drill_request", actor_id=str(cast.staff.pk)).exists()
    wait_for(
        lambda: DrillResult.objects.filter(pk=drill.pk, status__in=["passed", "failed"]).exists(),
        timeout=120,
        message="the worker did not finish the drill",
    )
    drill.refresh_from_db()
    assert drill.status == "passed", drill.error
    # The tenant sees it: the runbook's drill line links the evidence, and the page shows it.
    assert RunbookItem.objects.for_tenant(cast.acme).get(runbook=runbook, kind="drill").drill_id == drill.pk
    page = client_for(cast.owner).get(f"/t/acme/runbooks/{runbook.pk}/")
    assert f"Drill #{drill.pk} passed" in page.content.decode()
    # Staff see the evidence page; a second click while one runs would be refused (tested in test_drill).
    assert client_for(cast.staff).get(f"/platform/runbook/drills/{drill.pk}/").status_code == 200


def test_platform_drill_pages_are_staff_only(db, cast, client_for):
    for user in (cast.owner, cast.outsider):
        client = client_for(user)
        assert client.get("/platform/runbook/drills/").status_code == 404
        assert client.post("/platform/runbook/drills/run/").status_code == 404
    assert not DrillResult.objects.exists()
    assert client_for(cast.staff).get("/platform/runbook/drills/").status_code == 200
    assert client_for(cast.staff).get("/platform/runbook/drills/999999/").status_code == 404


def test_a_broker_that_refuses_the_drill_fails_it_visibly(
    db, cast, client_for, monkeypatch, django_capture_on_commit_callbacks
):
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.run_restore_drill, "delay", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(cast.staff).post("/platform/runbook/drills/run/")
    assert response.status_code == 302
    drill = DrillResult.objects.get()
    assert drill.status == "failed"
    assert "broker" in drill.error
