"""Rotation reminders: steps through time, exactly one e-mail per (subject, due date, step), Bastion's own secrets."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.core import mail
from django.test import Client

from apps.audit.models import AuditEvent
from apps.keys.credentials import adapters, reminders, services
from apps.keys.credentials.reminders import DueItem, step_for
from apps.keys.models import RotationReminder, SigningKey
from apps.sso.models import SSOConnection
from apps.tenants.models import Membership
from tests.keys.helpers import issue_token, make_client
from tests.keys.test_credential_views import make_credential

pytestmark = pytest.mark.django_db

START = datetime(2027, 1, 4, 7, 0, tzinfo=UTC)  # a Monday, 07:00 UTC as the beat schedule says


def _item(due_days: int, *, automatic: bool = False) -> DueItem:
    return DueItem("x:1", "x", "credential", 1, START.date() + timedelta(days=due_days), automatic=automatic)


@pytest.mark.parametrize(
    ("due_in", "step"),
    [
        (30, None),
        (15, None),
        (14, "due_14"),
        (10, "due_14"),
        (8, "due_14"),
        (7, "due_7"),
        (2, "due_7"),
        (1, "due_1"),
        (0, "due_1"),
        (-1, "overdue"),
        (-6, "overdue"),
        (-7, "escalated"),
        (-400, "escalated"),
    ],
)
def test_the_step_a_subject_is_at(due_in, step):
    assert step_for(_item(due_in), START.date()) == step


def test_automatic_subjects_only_get_a_failure_step():
    assert step_for(_item(3, automatic=True), START.date()) is None
    assert step_for(_item(0, automatic=True), START.date()) is None
    assert step_for(_item(-1, automatic=True), START.date()) == "failed"


@pytest.fixture
def due_world(cast):
    with time_machine.travel(START - timedelta(days=80), tick=False):
        owner = Membership.objects.get(tenant=cast.acme, user=cast.member)
        cast.credential = make_credential(cast.acme, owner=owner)  # due START + 10 days
    return cast


def _run_on(day_offset: int, **kwargs):
    with time_machine.travel(START + timedelta(days=day_offset), tick=False):
        return reminders.run(**kwargs)


def test_a_quarter_of_reminders_each_step_once_then_escalation(due_world):
    cast = due_world
    sent: dict[int, list[tuple[str, list[str]]]] = {}
    for day in range(0, 25):
        before = len(mail.outbox)
        _run_on(day)
        _run_on(day)  # a second run the same day sends nothing
        sent[day] = [(m.subject, sorted(m.to)) for m in mail.outbox[before:]]
    steps = list(
        RotationReminder.objects.order_by("pk").values_list("step", "due_on", "status", "recipients", "tenant_id")
    )
    due = START.date() + timedelta(days=10)
    assert [s[:3] for s in steps] == [
        ("due_14", due, "sent"),
        ("due_7", due, "sent"),
        ("due_1", due, "sent"),
        ("overdue", due, "sent"),
        ("escalated", due, "sent"),
    ]
    days_with_mail = {day: msgs for day, msgs in sent.items() if msgs}
    assert sorted(days_with_mail) == [0, 3, 9, 11, 17]
    assert days_with_mail[0] == [(days_with_mail[0][0][0], ["member@acme.example"])]
    assert "is due in 10 days" in days_with_mail[0][0][0]
    assert "Acme Corp" in days_with_mail[0][0][0]
    assert days_with_mail[11][0][1] == ["member@acme.example"]
    assert "is overdue" in days_with_mail[11][0][0]
    # Escalation: owners and admins, the credential's owner in copy.
    assert days_with_mail[17][0][1] == ["admin@acme.example", "member@acme.example", "owner@acme.example"]
    assert all(s[4] == cast.acme.pk for s in steps)
    events = AuditEvent.objects.filter(action="credential.reminder_sent", tenant=cast.acme)
    assert events.count() == 5


def test_rotation_moves_the_due_date_and_reminders_start_again(due_world):
    _run_on(0)
    assert len(mail.outbox) == 1
    with time_machine.travel(START + timedelta(days=1), tick=False):
        services.credential_rotation_record(credential=due_world.credential, rotated_at=START + timedelta(days=1))
    for day in range(1, 20):
        _run_on(day)
    assert len(mail.outbox) == 1  # next due in 90 days: nothing more this month
    _run_on(1 + 90 - 14)
    assert len(mail.outbox) == 2


def test_a_credential_without_owner_reminds_the_admins(cast):
    with time_machine.travel(START - timedelta(days=85), tick=False):
        make_credential(cast.acme, name="nobody's")
    _run_on(0)
    assert sorted(mail.outbox[0].to) == ["admin@acme.example", "owner@acme.example"]


def test_message_id_is_stable_per_reminder(due_world):
    _run_on(0)
    reminder = RotationReminder.objects.get()
    assert mail.outbox[0].extra_headers["Message-ID"] == reminders.message_id(reminder)
    assert "/t/acme/keys/credentials/" in mail.outbox[0].body


@pytest.mark.django_db(transaction=True)
def test_two_runs_at_once_send_each_reminder_once(due_world):
    """Two threads run the whole job together; the sender is slow so their deliveries overlap."""
    barrier = threading.Barrier(2)
    delivered: list[str] = []
    lock = threading.Lock()

    def slow_sender(message):
        with lock:
            delivered.append(message.subject)
        threading.Event().wait(0.3)

    errors: list[BaseException] = []

    def job():
        from django.db import connection

        try:
            barrier.wait()
            reminders.run(sender=slow_sender)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=job) for _ in range(2)]
    with time_machine.travel(START + timedelta(days=4), tick=True):  # travel is process-wide: set it once here
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert errors == []
    assert len(delivered) == 1
    assert RotationReminder.objects.get().status == "sent"


def test_a_failed_send_is_retried_after_its_lease_then_given_up(due_world):
    def broken(message):
        raise ConnectionError("smtp down")

    _run_on(0, sender=broken)
    reminder = RotationReminder.objects.get()
    assert (reminder.status, reminder.attempts) == ("pending", 1)
    assert reminder.last_error == "ConnectionError while sending"
    # Within the lease nobody retries; after it the 10-minute sweep does.
    with time_machine.travel(START + timedelta(minutes=5), tick=False):
        assert reminders.deliver(sender=broken) == 0
    assert RotationReminder.objects.get().attempts == 1
    for attempt in range(2, reminders.MAX_ATTEMPTS + 1):
        with time_machine.travel(START + timedelta(minutes=11 * attempt), tick=False):
            reminders.deliver(sender=broken)
    reminder.refresh_from_db()
    assert (reminder.status, reminder.attempts) == ("failed", reminders.MAX_ATTEMPTS)
    assert AuditEvent.objects.filter(action="credential.reminder_failed").count() == 1
    assert mail.outbox == []


# --- Bastion's own secrets ------------------------------------------------------------------------


def test_a_signing_key_that_was_not_rotated_reminds_the_staff(cast, settings):
    settings.KEYS_SIGNING_KEY_ROTATION_DAYS = 30
    issue_token(make_client(tenant=cast.acme))  # the first token bootstraps the active key
    active = SigningKey.objects.filter(status="active")
    assert active.exists()
    result = reminders.run()
    assert result["planned"] == 0  # a fresh key: nothing to say
    staff_page = Client()
    staff_page.force_login(cast.staff)
    assert "did not happen" not in staff_page.get("/platform/signing-keys/").content.decode()
    active.update(activated_at=datetime.now(UTC) - timedelta(days=40))
    reminders.run()
    reminder = RotationReminder.objects.get(step="failed")
    assert reminder.tenant_id is None
    assert reminder.subject_key.startswith("signing_key:")
    assert mail.outbox[0].to == ["staff@bastion.example"]
    assert "was not rotated automatically" in mail.outbox[0].subject
    assert AuditEvent.objects.filter(action="credential.reminder_sent", tenant__isnull=True).count() == 1
    staff = Client()
    staff.force_login(cast.staff)
    page = staff.get("/platform/signing-keys/").content.decode()
    assert "The automatic rotation did not happen" in page


def _certificate(days: int) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "idp.acme.example")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=300))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_idp_certificates_nearing_expiry_are_due_items(cast, client_for):
    SSOConnection.objects.create(
        tenant=cast.acme,
        kind="saml",
        name="Okta",
        status="enabled",
        config={"idp_x509_certs": [_certificate(10), _certificate(200)]},
    )
    SSOConnection.objects.create(
        tenant=cast.globex,
        kind="saml",
        name="Globex IdP",
        status="enabled",
        config={"idp_x509_certs": [_certificate(5)]},
    )
    items = adapters.certificate_items(cast.acme)
    assert [(i.kind, (i.due_on - datetime.now(UTC).date()).days) for i in items] == [("idp_certificate", 10)]
    body = client_for(cast.admin).get("/t/acme/keys/credentials/due/").content.decode()
    assert "IdP certificate of “Okta”" in body
    assert "Globex IdP" not in body
    reminders.run(extra=adapters.other_items(None))
    to = {tuple(m.to) for m in mail.outbox}
    assert ("admin@acme.example", "owner@acme.example") in to
    assert ("owner@globex.example",) in to
    steps = set(RotationReminder.objects.values_list("tenant__slug", "step"))
    assert steps == {("acme", "due_14"), ("globex", "due_7")}


def test_unreadable_certificates_are_skipped(cast):
    SSOConnection.objects.create(
        tenant=cast.acme, kind="saml", name="Broken", status="enabled", config={"idp_x509_certs": ["not a cert"]}
    )
    assert adapters.certificate_items(cast.acme) == []


def test_webhook_secrets_are_due_a_year_after_they_were_set(cast, client_for):
    from apps.alerts.models import WebhookEndpoint
    from apps.breakglass.models import IncidentWebhook

    hook = IncidentWebhook.objects.create(tenant=cast.acme, token="t" * 40, secret_encrypted="x")
    old = WebhookEndpoint.objects.create(
        tenant=cast.acme, name="SIEM", url="https://siem.example/hook", secret_encrypted="x", secret_hint="abcd"
    )
    WebhookEndpoint.objects.create(
        tenant=cast.acme, name="Fresh", url="https://ops.example/hook", secret_encrypted="x", secret_hint="efgh"
    )
    IncidentWebhook.objects.filter(pk=hook.pk).update(created_at=datetime.now(UTC) - timedelta(days=370))
    WebhookEndpoint.objects.filter(pk=old.pk).update(created_at=datetime.now(UTC) - timedelta(days=355))
    items = {i.label: (i.due_on - datetime.now(UTC).date()).days for i in adapters.webhook_secret_items(cast.acme)}
    assert items == {"Incident webhook secret": -5, "Alert webhook “SIEM” secret": 10}
    body = client_for(cast.admin).get("/t/acme/keys/credentials/due/").content.decode()
    assert "Alert webhook “SIEM” secret" in body
    assert "Fresh" not in body
    reminders.run(extra=adapters.other_items(None))
    assert set(RotationReminder.objects.values_list("step", flat=True)) == {"overdue", "due_14"}
    assert all(sorted(m.to) == ["admin@acme.example", "owner@acme.example"] for m in mail.outbox)
    IncidentWebhook.objects.filter(pk=hook.pk).update(rotated_at=datetime.now(UTC))
    assert [i.label for i in adapters.webhook_secret_items(cast.acme)] == ["Alert webhook “SIEM” secret"]


@pytest.mark.django_db(transaction=True)  # as in production: the (deferred) foreign key is checked at commit
def test_a_credential_deleted_mid_run_costs_only_its_own_reminder(cast):
    with time_machine.travel(START - timedelta(days=85), tick=False):
        gone = make_credential(cast.acme, name="gone")
        make_credential(cast.acme, name="stays")
    with time_machine.travel(START, tick=False):
        items = reminders.credential_items(today=START.date())
        services.credential_delete(credential=gone)
        reminders.plan(today=START.date(), items=items)
    assert list(RotationReminder.objects.values_list("subject_label", flat=True)) == ["stays (openai, prod)"]
