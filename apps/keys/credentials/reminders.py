"""Rotation reminders: what is due, which step it is at, and exactly one e-mail per (subject, due date, step).

Steps. With the default ``KEYS_REMINDER_DAYS`` (14, 7, 1): a credential due in
14 days or less gets ``due_14``, 7 or less ``due_7``, 1 or less (the due day
included) ``due_1``; once past its due date ``overdue`` (to its owner), and
``KEYS_REMINDER_ESCALATE_AFTER_DAYS`` (7) days after that ``escalated`` (to the
tenant's owners and admins, the owner in copy). A run sends only the step a
subject is at today: a credential created 10 days before its due date starts at
``due_14``; days the task did not run are not made up one by one. Subjects
rotated automatically (the platform's token-signing keys) only get ``failed``,
when the active key is older than its schedule says.

Exactly once. ``plan`` inserts one ``RotationReminder`` row per (subject, due
date, step) with ``INSERT … ON CONFLICT DO NOTHING``: two runs at once, or a
retried run, insert it once. ``deliver`` then claims pending rows with a
conditional update under ``FOR UPDATE SKIP LOCKED`` that sets a lease
(``lease_until``, 10 minutes), sends, and marks the row sent. A second
deliverer skips a claimed row; a run killed after its claim leaves a lease
that runs out, and the next run (the 10-minute sweep) sends it.

The one window left is a crash after the mail server accepted the message and
before the row is marked sent. We chose at-least-once there: the row is sent
again after its lease, with the same ``Message-ID`` (``<rotation-reminder-<id>@…>``)
so mail systems and clients can fold the two. A lost reminder (at-most-once)
could leave a credential unrotated; a duplicate costs one e-mail. The window
is one SMTP round trip (``EMAIL_TIMEOUT``, 10 s, well inside the lease).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, connection, transaction
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import Actor, record
from apps.keys import conf
from apps.keys.models import Credential, RotationReminder, SigningKey
from apps.tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 5
BATCH = 200
OVERDUE, ESCALATED, FAILED = "overdue", "escalated", "failed"
ADMIN_ROLES = (Membership.Role.OWNER, Membership.Role.ADMIN)


@dataclass(frozen=True)
class DueItem:
    """One thing that needs rotating (or renewing) by ``due_on``.

    ``owner_user_id`` receives the reminders; without one, the tenant's owners and
    admins do (the platform's staff for ``tenant_id`` None). ``automatic``: rotated
    by Bastion itself, reminded only when that failed.
    """

    subject_key: str
    label: str
    kind: str
    tenant_id: int | None
    due_on: date
    path: str = ""
    owner_user_id: int | None = None
    credential_id: int | None = None
    automatic: bool = False
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


def reminder_days() -> tuple[int, ...]:
    return tuple(sorted({int(d) for d in getattr(settings, "KEYS_REMINDER_DAYS", (14, 7, 1)) if int(d) >= 1}))


def escalate_after_days() -> int:
    return int(getattr(settings, "KEYS_REMINDER_ESCALATE_AFTER_DAYS", 7))


def step_for(item: DueItem, today: date) -> str | None:
    """The step ``item`` is at on ``today`` (None: nothing to send yet)."""
    days_left = (item.due_on - today).days
    if item.automatic:
        return FAILED if days_left < 0 else None
    if days_left < 0:
        return ESCALATED if -days_left >= escalate_after_days() else OVERDUE
    for day in reminder_days():  # ascending: the most urgent threshold that applies
        if days_left <= day:
            return f"due_{day}"
    return None


# --- what is due ------------------------------------------------------------------------------


def credential_items(*, today: date, tenant: Tenant | None = None) -> list[DueItem]:
    """Provider credentials of active tenants due within the first reminder (or overdue)."""
    horizon = today + timedelta(days=max(reminder_days(), default=14))
    qs = Credential.objects.filter(next_due_on__lte=horizon, tenant__status=Tenant.Status.ACTIVE)
    if tenant is not None:
        qs = Credential.objects.for_tenant(tenant).filter(next_due_on__lte=horizon)
    rows = qs.select_related("tenant", "owner").order_by("next_due_on", "pk")
    return [
        DueItem(
            subject_key=f"credential:{c.pk}",
            label=f"{c.name} ({c.provider}, {c.environment})",
            kind="credential",
            tenant_id=c.tenant_id,
            due_on=c.next_due_on,
            path=reverse("credentials:detail", kwargs={"tenant_slug": c.tenant.slug, "pk": c.pk}),
            owner_user_id=c.owner.user_id if c.owner is not None and c.owner.status == "active" else None,
            credential_id=c.pk,
        )
        for c in rows
    ]


def signing_key_items(*, now: datetime) -> list[DueItem]:
    """The platform's active signing keys older than their schedule: the automatic rotation did not happen.

    A key signs for ``KEYS_SIGNING_KEY_ROTATION_DAYS``; the hourly task then
    activates the next one. One day of grace covers a task that was briefly down.
    """
    limit = timedelta(days=conf.rotation_days())
    items = []
    for key in SigningKey.objects.filter(status=SigningKey.Status.ACTIVE).defer("private_key"):
        started = key.activated_at or key.created_at
        due = started + limit
        if now > due + timedelta(days=1):
            items.append(
                DueItem(
                    subject_key=f"signing_key:{key.kid}",
                    label=f"Token signing key {key.kid} ({key.alg})",
                    kind="signing_key",
                    tenant_id=None,
                    due_on=due.date(),
                    path="/platform/signing-keys/",
                    automatic=True,
                    detail="Rotated automatically every "
                    f"{conf.rotation_days()} days; this one is still active: check the worker and beat.",
                )
            )
    return items


def due_items(*, today: date, now: datetime, extra: Iterable[DueItem] = ()) -> list[DueItem]:
    return [*credential_items(today=today), *signing_key_items(now=now), *extra]


# --- plan: one row per (subject, due date, step) ----------------------------------------------


def _recipients(items: list[tuple[DueItem, str]]) -> dict[tuple[str, str], list[str]]:
    """E-mail addresses per (subject, step), in two queries whatever the number of items."""
    tenant_ids = {item.tenant_id for item, _ in items if item.tenant_id is not None}
    user_ids = {item.owner_user_id for item, _ in items if item.owner_user_id is not None}
    admins: dict[int, list[str]] = defaultdict(list)
    for tenant_id, email in (
        Membership.objects.filter(tenant_id__in=tenant_ids, status="active", role__in=ADMIN_ROLES)
        .order_by("tenant_id", "user__email")
        .values_list("tenant_id", "user__email")
    ):
        admins[tenant_id].append(email)
    emails = dict(User.objects.filter(pk__in=user_ids, is_active=True).values_list("pk", "email"))
    staff: list[str] = []
    if any(item.tenant_id is None for item, _ in items):
        staff_users = User.objects.filter(is_staff=True, is_active=True).order_by("email")
        staff = list(staff_users.values_list("email", flat=True))
    out: dict[tuple[str, str], list[str]] = {}
    for item, step in items:
        group = staff if item.tenant_id is None else admins[item.tenant_id]
        owner = emails.get(item.owner_user_id) if item.owner_user_id else None
        # The owner alone until the escalation; the admins (the owner in copy) then, or when nobody owns it.
        escalate = step == ESCALATED or owner is None
        out[(item.subject_key, step)] = sorted({*group, *([owner] if owner else [])}) if escalate else [owner]
    return out


def plan(*, today: date, items: Iterable[DueItem]) -> list[int]:
    """Insert the reminder rows due today; returns the ids this call created (others existed already)."""
    stepped = [(item, step) for item in items if (step := step_for(item, today)) is not None]
    if not stepped:
        return []
    recipients = _recipients(stepped)
    created: list[int] = []
    for item, step in stepped:
        try:
            # A savepoint per row: a credential deleted since it was listed (its foreign key fails)
            # costs its own reminder only, not the run.
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(
                    f"""
                    INSERT INTO {RotationReminder._meta.db_table}
                        (tenant_id, subject_key, subject_label, due_on, step, credential_id, recipients,
                         status, attempts, last_error, created_at)
                    VALUES (%s, %s, %s, %s, %s, %s, %s, 'pending', 0, '', now())
                    ON CONFLICT (subject_key, due_on, step) DO NOTHING
                    RETURNING id
                    """,
                    [
                        item.tenant_id,
                        item.subject_key[:200],
                        item.label[:300],
                        item.due_on,
                        step,
                        item.credential_id,
                        recipients[(item.subject_key, step)],
                    ],
                )
                row = cursor.fetchone()
        except IntegrityError:
            logger.info("rotation reminder for %s skipped: its subject is gone", item.subject_key)
            continue
        if row is not None:
            created.append(row[0])
    return created


# --- deliver: claim, send, mark ---------------------------------------------------------------


def _claim(now: datetime, limit: int) -> list[RotationReminder]:
    """Lease up to ``limit`` pending rows nobody holds; a concurrent deliverer skips them (SKIP LOCKED)."""
    table = RotationReminder._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} SET lease_until = %s, attempts = attempts + 1
            WHERE id IN (
                SELECT id FROM {table}
                WHERE status = 'pending' AND (lease_until IS NULL OR lease_until < %s)
                ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
            )
            RETURNING id
            """,
            [now + LEASE, now, limit],
        )
        ids = [row[0] for row in cursor.fetchall()]
    return list(RotationReminder.objects.filter(pk__in=ids).select_related("tenant").order_by("pk"))


def message_id(reminder: RotationReminder) -> str:
    host = urlsplit(settings.SITE_URL).hostname or "bastion.localhost"
    return f"<rotation-reminder-{reminder.pk}@{host}>"


STEP_WORDS = {
    OVERDUE: "is overdue",
    ESCALATED: "is overdue (escalated to the organisation's admins)",
    FAILED: "was not rotated automatically",
}


def build_message(reminder: RotationReminder, *, path: str = "", detail: str = "") -> EmailMessage:
    days = (reminder.due_on - timezone.now().date()).days
    if reminder.step in STEP_WORDS:
        when = STEP_WORDS[reminder.step]
    elif days <= 0:
        when = "is due today"
    else:
        when = f"is due in {days} day{'s' if days != 1 else ''}"
    where = f"{reminder.tenant.name}: " if reminder.tenant_id else "Bastion platform: "
    subject = f"[Bastion] {where}{reminder.subject_label} {when}"
    lines = [
        f"{reminder.subject_label} {when} (due {reminder.due_on:%Y-%m-%d}).",
        "",
        detail or "Rotate it, then mark it rotated in Bastion so the schedule moves on.",
    ]
    if path:
        lines += ["", settings.SITE_URL.rstrip("/") + path]
    lines += ["", "This is reminder step “" + reminder.step + "”; Bastion sends each step once."]
    return EmailMessage(
        subject=subject[:200],
        body="\n".join(lines),
        to=list(reminder.recipients),
        headers={"Message-ID": message_id(reminder)},
    )


Sender = Callable[[EmailMessage], Any]


def _smtp_send(message: EmailMessage) -> None:
    message.send(fail_silently=False)


def deliver(
    *, now: datetime | None = None, sender: Sender | None = None, paths: dict[str, tuple[str, str]] | None = None
) -> int:
    """Send every pending reminder this call can claim; returns how many it sent (``sender``: tests)."""
    now = now or timezone.now()
    sender = sender or _smtp_send
    paths = paths or {}
    sent = 0
    while batch := _claim(now, BATCH):
        for reminder in batch:
            sent += _deliver_one(reminder, now=now, sender=sender, paths=paths)
        if len(batch) < BATCH:
            break
    return sent


def _deliver_one(
    reminder: RotationReminder, *, now: datetime, sender: Sender, paths: dict[str, tuple[str, str]]
) -> int:
    path, detail = paths.get(reminder.subject_key, ("", ""))
    if not path and reminder.credential_id and reminder.tenant_id:
        path = reverse("credentials:detail", kwargs={"tenant_slug": reminder.tenant.slug, "pk": reminder.credential_id})
    if not reminder.recipients:
        _finish(reminder, status=RotationReminder.Status.FAILED, error="Nobody to tell: no owner, admin or staff.")
        return 0
    try:
        sender(build_message(reminder, path=path, detail=detail))
    except Exception as exc:  # noqa: BLE001 - any delivery failure: retried after the lease, then given up
        error = f"{type(exc).__name__} while sending"
        logger.warning("rotation reminder %s not sent: %s", reminder.pk, error)
        if reminder.attempts >= MAX_ATTEMPTS:
            _finish(reminder, status=RotationReminder.Status.FAILED, error=error)
        else:
            RotationReminder.objects.filter(pk=reminder.pk, status="pending").update(last_error=error)
        return 0
    _finish(reminder, status=RotationReminder.Status.SENT, error="")
    return 1


def _finish(reminder: RotationReminder, *, status: str, error: str) -> None:
    with transaction.atomic():
        changed = RotationReminder.objects.filter(pk=reminder.pk, status="pending").update(
            status=status, sent_at=timezone.now() if status == "sent" else None, last_error=error, lease_until=None
        )
        if changed:
            record(
                "credential.reminder_sent" if status == "sent" else "credential.reminder_failed",
                tenant=reminder.tenant_id,
                actor=Actor.system("rotation reminders"),
                target=reminder,
                result="success" if status == "sent" else "failure",
                metadata={
                    "subject": reminder.subject_key,
                    "due_on": reminder.due_on.isoformat(),
                    "step": reminder.step,
                    "recipients": list(reminder.recipients),
                    "attempts": reminder.attempts,
                    "error": error,
                },
            )


def run(*, extra: Iterable[DueItem] = (), sender: Sender | None = None, now: datetime | None = None) -> dict[str, int]:
    """The daily job: plan today's reminders for everything due (``extra``: other apps' items), then deliver."""
    now = now or timezone.now()
    items = due_items(today=now.date(), now=now, extra=extra)
    created = plan(today=now.date(), items=items)
    paths = {item.subject_key: (item.path, item.detail) for item in items}
    sent = deliver(now=now, sender=sender, paths=paths)
    return {"due": len(items), "planned": len(created), "sent": sent}
