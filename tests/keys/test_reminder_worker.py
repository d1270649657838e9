"""The reminder task on a real Celery worker: twice at once, and a run killed mid-way then retried.

The killed run is a real process (``python -c`` with the test settings and the
test database) that claims a reminder and is SIGKILLed, either before the
e-mail left (the retry sends it: one e-mail) or after it left and before the
row was marked sent (the retry sends it again with the same Message-ID: the
documented at-least-once choice, see ``apps/keys/credentials/reminders.py``).
"""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from celery.signals import task_postrun
from django.conf import settings
from django.core import mail
from django.db import connection
from django.utils import timezone

from apps.keys.credentials import reminders
from apps.keys.models import RotationReminder
from apps.keys.tasks import deliver_rotation_reminders, send_rotation_reminders
from apps.tenants.models import Membership
from tests.keys.test_credential_views import make_credential

pytestmark = [pytest.mark.celery]
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def finished():
    """Names of tasks the in-process worker finished during the test."""
    done: list[str] = []

    def on_postrun(task=None, **kwargs):
        done.append(task.name)

    task_postrun.connect(on_postrun, weak=False)
    yield done
    task_postrun.disconnect(on_postrun)


@pytest.fixture
def two_due(cast):
    owner = Membership.objects.get(tenant=cast.acme, user=cast.member)
    make_credential(cast.acme, name="due in 7", owner=owner, rotated_days_ago=83)
    make_credential(cast.acme, name="overdue", owner=owner, rotated_days_ago=95)
    return cast


def test_the_task_twice_at_once_on_a_real_worker_sends_each_reminder_once(
    celery_worker, two_due, finished, wait_for, monkeypatch
):
    real_send, real_plan = reminders._smtp_send, reminders.plan
    barrier = threading.Barrier(2, timeout=30)

    def plan_together(**kwargs):  # both runs reach the INSERTs at the same moment
        barrier.wait()
        return real_plan(**kwargs)

    def slow_send(message):  # and their deliveries overlap
        time.sleep(0.3)
        real_send(message)

    monkeypatch.setattr(reminders, "plan", plan_together)
    monkeypatch.setattr(reminders, "_smtp_send", slow_send)
    send_rotation_reminders.delay()
    send_rotation_reminders.delay()
    wait_for(lambda: finished.count("apps.keys.tasks.send_rotation_reminders") == 2, timeout=60)
    assert not barrier.broken  # both runs were in the job at once (the worker has two threads)
    assert sorted(RotationReminder.objects.values_list("step", "status")) == [("due_7", "sent"), ("overdue", "sent")]
    assert len(mail.outbox) == 2
    assert len({m.extra_headers["Message-ID"] for m in mail.outbox}) == 2


def _database_url() -> str:
    db = connection.settings_dict
    user = db["USER"] or "postgres"
    password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
    return f"postgresql://{user}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


KILLED_RUN = """
import os, signal, sys
import django
django.setup()
from django.conf import settings
from apps.keys.credentials import reminders

settings.EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
settings.EMAIL_FILE_PATH = sys.argv[2]

def die_before_sending(message):
    os.kill(os.getpid(), signal.SIGKILL)

def die_after_sending(message):
    message.send()
    os.kill(os.getpid(), signal.SIGKILL)

reminders.run(sender=die_before_sending if sys.argv[1] == "before" else die_after_sending)
"""


def _killed_run(when: str, outdir: Path) -> int:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
    }
    process = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", KILLED_RUN, when, str(outdir)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == -signal.SIGKILL, process.stderr.decode()[-3000:]
    return process.returncode


def test_a_run_killed_before_sending_is_completed_by_the_retry(celery_worker, cast, finished, wait_for, tmp_path):
    owner = Membership.objects.get(tenant=cast.acme, user=cast.member)
    make_credential(cast.acme, name="due in 7", owner=owner, rotated_days_ago=83)
    _killed_run("before", tmp_path)
    reminder = RotationReminder.objects.get()
    assert (reminder.status, reminder.attempts) == ("pending", 1)
    assert reminder.lease_until > timezone.now()
    assert list(tmp_path.iterdir()) == []  # nothing left the dying process
    # A retry within the lease leaves it alone (the dying run might still be sending).
    send_rotation_reminders.delay()
    wait_for(lambda: "apps.keys.tasks.send_rotation_reminders" in finished, timeout=60)
    assert RotationReminder.objects.get().status == "pending"
    assert mail.outbox == []
    # Once the lease ran out, the 10-minute sweep on the real worker sends it: one e-mail in all.
    with time_machine.travel(timezone.now() + reminders.LEASE + timedelta(seconds=30), tick=True):
        deliver_rotation_reminders.delay()
        wait_for(lambda: "apps.keys.tasks.deliver_rotation_reminders" in finished, timeout=60)
        send_rotation_reminders.delay()  # and the daily run again: nothing more
        wait_for(lambda: finished.count("apps.keys.tasks.send_rotation_reminders") == 2, timeout=60)
    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts) == ("sent", 2)
    assert len(mail.outbox) == 1


def test_a_run_killed_after_sending_resends_with_the_same_message_id(celery_worker, cast, finished, wait_for, tmp_path):
    owner = Membership.objects.get(tenant=cast.acme, user=cast.member)
    make_credential(cast.acme, name="due in 7", owner=owner, rotated_days_ago=83)
    _killed_run("after", tmp_path)
    first = [email.message_from_bytes(path.read_bytes()) for path in tmp_path.iterdir()]
    assert len(first) == 1
    reminder = RotationReminder.objects.get()
    assert reminder.status == "pending"  # the process died before it could mark it
    with time_machine.travel(timezone.now() + reminders.LEASE + timedelta(seconds=30), tick=True):
        deliver_rotation_reminders.delay()
        wait_for(lambda: "apps.keys.tasks.deliver_rotation_reminders" in finished, timeout=60)
    assert RotationReminder.objects.get().status == "sent"
    assert len(mail.outbox) == 1
    assert mail.outbox[0].extra_headers["Message-ID"] == first[0]["Message-ID"]
