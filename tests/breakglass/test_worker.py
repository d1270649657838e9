"""Issue #11 item 4 and the races: the expiry sweep on a real broker and worker, run twice at once.

These tests commit for real (the worker and the racing threads have their own connections).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.utils import timezone

from apps.access import decisions
from apps.access.models import RoleBinding
from apps.audit.models import AuditEvent
from apps.breakglass import services
from apps.breakglass.models import Approval, Elevation
from apps.breakglass.tasks import expire_elevations
from apps.tenants.models import Tenant
from tests.breakglass.conftest import ask, member

pytestmark = pytest.mark.django_db(transaction=True)


def _race(*calls):
    """Run ``calls`` in threads released together; returns their results or exceptions."""
    barrier = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def run(i, call):
        try:
            barrier.wait()
            results[i] = call()
        except Exception as exc:  # noqa: BLE001 - the test inspects what each side got
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return results


def _active_then_over(world):
    elevation = services.elevation_approve(tenant=world.cast.acme, elevation_id=ask(world).pk, approver=world.approver1)
    # The time box ran out a second ago (moving the rows, not the clock: the worker's threads
    # must keep real time for the broker).
    past = timezone.now() - timedelta(seconds=1)
    Elevation.objects.filter(pk=elevation.pk).update(expires_at=past)
    RoleBinding.objects.filter(pk=elevation.binding_id).update(expires_at=past)
    return elevation


def test_beat_task_twice_at_once_on_the_real_worker_expires_once(world, celery_worker, wait_for) -> None:
    elevation = _active_then_over(world)
    # Access is already refused before any worker ran.
    assert not decisions.can(member(world.cast, world.cast.member), "dataset.write")
    version = Tenant.objects.get(pk=world.cast.acme.pk).access_version
    expire_elevations.delay()
    expire_elevations.delay()
    wait_for(lambda: Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.EXPIRED)

    # Requester and the approver are told (the notice task is enqueued on commit, to the same worker).
    def expired_mail():
        return [m.to[0] for m in mail.outbox if "has expired" in m.subject]

    wait_for(lambda: len(expired_mail()) >= 2)
    time.sleep(1.0)  # let the other run finish: it must have found nothing
    assert AuditEvent.objects.filter(action="breakglass.expire", metadata__elevation=elevation.pk).count() == 1
    assert sorted(expired_mail()) == ["approver1@acme.example", "member@acme.example"]
    assert Tenant.objects.get(pk=world.cast.acme.pk).access_version == version + 1
    # A later run changes nothing.
    assert services.elevations_expire() == {"expired": 0, "lapsed": 0}


def test_two_sweeps_racing_claim_each_row_once(world) -> None:
    elevation = _active_then_over(world)
    results = _race(services.elevations_expire, services.elevations_expire)
    assert sum(r["expired"] for r in results) == 1, results
    assert AuditEvent.objects.filter(action="breakglass.expire", metadata__elevation=elevation.pk).count() == 1


def test_two_approvers_at_the_same_moment_activate_once(world) -> None:
    services.policy_update(policy=world.policy, actor=world.owner, approvals_required=2)
    elevation = ask(world)

    def approve(who):
        return lambda: services.elevation_approve(tenant=world.cast.acme, elevation_id=elevation.pk, approver=who)

    results = _race(approve(world.approver1), approve(world.approver2))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert Approval.objects.filter(elevation_id=elevation.pk).count() == 2
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ACTIVE
    assert AuditEvent.objects.filter(action="breakglass.activate", metadata__elevation=elevation.pk).count() == 1
    assert RoleBinding.objects.filter(membership=world.member, expires_at__isnull=False).count() == 1


def test_stale_pending_request_lapses(world) -> None:
    elevation = ask(world)
    Elevation.objects.filter(pk=elevation.pk).update(pending_until=timezone.now() - timedelta(seconds=1))
    assert services.elevations_expire()["lapsed"] == 1
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.LAPSED
    assert services.elevations_expire()["lapsed"] == 0
