"""The shared cast: tenant Acme with owner, admin, member, viewer; an outsider; tenant Globex."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.tenants.models import Membership, Tenant
from tests.factories import MembershipFactory, TenantFactory, UserFactory

PASSWORD = "correct horse battery staple"


@dataclass
class Cast:
    acme: Tenant
    globex: Tenant
    owner: User
    admin: User
    member: User
    viewer: User
    outsider: User
    globex_owner: User
    staff: User


@pytest.fixture
def cast(db: None) -> Cast:
    acme = TenantFactory(slug="acme", name="Acme Corp")
    globex = TenantFactory(slug="globex", name="Globex")
    users = {}
    for role in ("owner", "admin", "member", "viewer"):
        users[role] = UserFactory(email=f"{role}@acme.example")
        MembershipFactory(tenant=acme, user=users[role], role=role)
    outsider = UserFactory(email="outsider@elsewhere.example")
    globex_owner = UserFactory(email="owner@globex.example")
    MembershipFactory(tenant=globex, user=globex_owner, role=Membership.Role.OWNER)
    staff = UserFactory(email="staff@bastion.example", is_staff=True)
    return Cast(acme=acme, globex=globex, outsider=outsider, globex_owner=globex_owner, staff=staff, **users)


# --- the audit tables refuse TRUNCATE; Django's flush between transactional tests uses it ----------

AUDIT_TRUNCATE_TRIGGERS = {
    "audit_auditevent": "audit_event_no_truncate",
    "audit_auditseal": "audit_seal_no_truncate",
    "audit_auditchainhead": "audit_head_no_truncate",
    "audit_auditretentioncut": "audit_cut_no_truncate",
}


@pytest.fixture(scope="session", autouse=True)
def _audit_truncate_allowed_for_flush():
    """The one place tests lift the audit tables' TRUNCATE guard: around the flush after a transactional test.

    ``transactional_db`` (and ``live_server``, ``celery_worker``) empties every
    table with ``flush``, i.e. TRUNCATE, which apps/audit/migrations/0005 refuses
    on the audit tables. Only that flush runs with the guard switched off; it is
    back on before the next test starts, so tests see the production behaviour.
    """
    from django.db import connections
    from django.test import TransactionTestCase

    original = TransactionTestCase._fixture_teardown

    def switch(aliases: set[str] | list[str], verb: str) -> None:
        for alias in aliases:
            with connections[alias].cursor() as cursor:
                for table, trigger in AUDIT_TRUNCATE_TRIGGERS.items():
                    cursor.execute(f"ALTER TABLE {table} {verb} TRIGGER {trigger}")

    def fixture_teardown(self: TransactionTestCase) -> None:
        aliases = sorted(self._databases_names(include_mirrors=False))
        switch(aliases, "DISABLE")
        try:
            original(self)
        finally:
            switch(aliases, "ENABLE")

    TransactionTestCase._fixture_teardown = fixture_teardown
    try:
        yield
    finally:
        TransactionTestCase._fixture_teardown = original


@pytest.fixture
def client_for(db: None):
    """Return a logged-in test client for a user (session login, no password round trip)."""

    def make(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make


# --- a real Celery worker on the real broker -----------------------------------------------


@pytest.fixture(scope="session")
def _celery_worker_queue(django_db_setup, django_db_blocker):
    """One in-process Celery worker (a thread) for the session, consuming a queue of its own.

    The queue name is unique to this test process, so parallel runs (xdist
    workers, another checkout's suite) sharing the broker never take each
    other's messages. The worker runs tasks in its own threads with their own
    database connections: tests using it need committed data (``celery_worker``
    brings ``transactional_db``).
    """
    import os
    import uuid

    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    queue = f"bastion-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    worker = start_worker(
        app,
        pool="threads",  # the solo pool stalls ~10 s per task on AMQP when run in a thread
        concurrency=2,
        queues=[queue],
        perform_ping_check=False,
        loglevel="WARNING",
        shutdown_timeout=30,
    )
    # Database access is unblocked only to start and stop the worker: in between, the worker
    # threads reach the database only while a test holding transactional_db runs.
    with django_db_blocker.unblock():
        worker.__enter__()
    try:
        yield queue
    finally:
        with django_db_blocker.unblock():
            worker.__exit__(None, None, None)
        with app.connection_for_write() as conn:  # leave nothing behind in the shared broker
            conn.default_channel.queue_delete(queue)


@pytest.fixture
def celery_worker(_celery_worker_queue, transactional_db):
    """Send tasks through the real broker to a real worker for one test (``.delay()`` is not eager).

    Tasks go to the session worker's private queue. Wait for their effect by
    polling the database (there is no result backend); see ``wait_for``.
    """
    from config.celery import app

    saved = {key: app.conf[key] for key in ("task_always_eager", "task_default_queue")}
    app.conf.task_always_eager = False
    app.conf.task_default_queue = _celery_worker_queue
    try:
        yield _celery_worker_queue
    finally:
        app.conf.update(saved)


@pytest.fixture
def wait_for():
    """``wait_for(predicate, timeout=20)``: poll until ``predicate()`` is truthy; returns its value or fails."""
    import time

    def wait(predicate, timeout: float = 20.0, interval: float = 0.05, message: str = ""):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() >= deadline:
                pytest.fail(message or f"condition not met within {timeout:.0f}s")
            time.sleep(interval)

    return wait


# --- browser tests: one Playwright per test process (see tests/e2e/conftest.py) -------------------


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: install Debian's chromium package")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def screenshot_dir(tmp_path: Path) -> Path:
    """Where screenshots go: SCREENSHOT_DIR if set (to review them), else a temp folder."""
    target = Path(os.environ.get("SCREENSHOT_DIR", tmp_path))
    target.mkdir(parents=True, exist_ok=True)
    return target
