"""The Celery application and the one place every periodic schedule lives."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals
from celery.schedules import crontab

from apps.core import context

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("bastion")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work. Each entry says why it runs when it does. django-celery-beat's
# DatabaseScheduler reads this dict at start-up and keeps it in its tables.
app.conf.beat_schedule = {
    # IdP metadata URLs: often enough to pick up a rotated signing certificate
    # well before the old one stops working, rarely enough not to bother IdPs.
    "sso-refresh-saml-metadata": {
        "task": "apps.sso.tasks.refresh_all_saml_metadata",
        "schedule": 6 * 3600.0,
    },
    # Replay-store rows are useless once their assertion expired; daily keeps the table small.
    "sso-purge-seen-assertions": {
        "task": "apps.sso.tasks.purge_seen_assertions",
        "schedule": 24 * 3600.0,
    },
    # SSO drafts the "Add connection" page created (so its SP details never change) and nobody
    # finished: deleted after 7 untouched days, so a daily sweep is precise enough (#9, item 1).
    "sso-purge-abandoned-drafts": {
        "task": "apps.sso.tasks.purge_abandoned_drafts",
        "schedule": 24 * 3600.0,
    },
    # Pending e-mail domain claims: DNS changes usually show within minutes, and an admin who
    # does not click "Check now" should not wait long; each claim is looked up at most once per
    # run (one small TXT query to the claimant's DNS). The same run expires 14-day-old claims.
    "sso-check-pending-domains": {
        "task": "apps.sso.tasks.check_pending_domains",
        "schedule": 15 * 60.0,
    },
    # Token-use counts wait in Redis (no database write per API call); every minute keeps the
    # console's "last used" and hourly activity fresh while each flush stays one batch per hour hash.
    "api-flush-token-use": {
        "task": "apps.api.tasks.flush_token_use",
        "schedule": 60.0,
    },
    # Signing keys: hourly is far finer than the schedule's days (a next key is published
    # KEYS_SIGNING_KEY_PUBLISH_AHEAD_HOURS ahead, a retired one unpublished 15 minutes after its
    # last token expired), and a missed hour only delays a step. Every step is idempotent.
    "keys-rotate-signing-keys": {
        "task": "apps.keys.tasks.rotate_signing_keys",
        "schedule": 3600.0,
    },
    # Break-glass elevations: every minute, so the e-mail "your access ended" and the audit event
    # follow the end within a minute. Access itself is refused at expires_at by authorize(),
    # with or without this task; each run claims rows with SKIP LOCKED, so overlaps are harmless.
    "breakglass-expire-elevations": {
        "task": "apps.breakglass.tasks.expire_elevations",
        "schedule": 60.0,
    },
    # Stripe webhook inbox: every minute re-enqueue rows left pending past their grace or failed past
    # their backoff (a lost broker message, a killed worker), so nothing waits long after an outage.
    # Each row is claimed with SKIP LOCKED, so an overlap or a second task is a no-op.
    "billing-sweep-webhook-events": {
        "task": "apps.billing.tasks.sweep_webhook_events",
        "schedule": 60.0,
    },
    # Dunning: a grace is counted in days (BILLING_GRACE_DAYS), so once a day suspends a tenant at most
    # a day late and costs one small query; 03:30 UTC is off-peak in Europe and the Americas. Payment
    # itself lifts the suspension at once (the invoice.paid webhook), not this task.
    "billing-enforce-dunning": {
        "task": "apps.billing.tasks.enforce_dunning",
        "schedule": crontab(hour=3, minute=30),
    },
    # Budget counters (Redis) against the database: every minute, so a counter that drifted (Redis
    # restarted, a request died between Redis and its commit) is right again within a minute; a few
    # indexed sums per tenant with budgets. A counter that moved meanwhile is left for the next run.
    "billing-reconcile-budgets": {
        "task": "apps.billing.tasks.reconcile_budgets",
        "schedule": 60.0,
    },
    # Reservations: expiry already holds without this (Redis drops an expired hold on the next use and
    # settling checks expires_at); the task only marks the rows, so every minute keeps pages current.
    "billing-expire-reservations": {
        "task": "apps.billing.tasks.expire_reservations",
        "schedule": 60.0,
    },
    # Usage rollups: every 5 minutes keeps the usage page at most 5 minutes behind; each run rewrites
    # only the hours that newly received events touch (idempotent upserts, so overlaps are harmless).
    "billing-rollup-usage": {
        "task": "apps.billing.tasks.rollup_usage",
        "schedule": 5 * 60.0,
    },
    # Stripe meter events: every minute, well inside Stripe's 35-day window and its rate limits (500
    # events a run); identifiers are our event ids, so a resend after a crash is counted once by Stripe.
    "billing-report-usage-to-stripe": {
        "task": "apps.billing.tasks.report_usage_to_stripe",
        "schedule": 60.0,
    },
    # Rotation reminders (#13): due dates are days, so once a day is exact; 07:00 UTC lands at the start
    # of the European working day and before the Americas'. Each (credential, due date, step) is a unique
    # row claimed before sending, so a second run or a retry sends nothing twice.
    "keys-send-rotation-reminders": {
        "task": "apps.keys.tasks.send_rotation_reminders",
        "schedule": crontab(hour=7, minute=0),
    },
    # A reminder whose delivery died mid-way (worker killed, SMTP down) is retried once its 10-minute
    # lease has run out; every 10 minutes keeps that delay short. Claims use SKIP LOCKED: overlaps are no-ops.
    "keys-deliver-rotation-reminders": {
        "task": "apps.keys.tasks.deliver_rotation_reminders",
        "schedule": 10 * 60.0,
    },
    # Alert rules and fraud screening: rules are "per hour" over a sliding 60-minute window, so every
    # 5 minutes finds a surge within 5 minutes of it crossing the line, while each run stays a few
    # indexed aggregates per rule and tenant (per minute would multiply that load by five for little
    # gain; retry storms are counted per clock minute from the stored events, so none is missed between
    # runs). Rules and the fraud policy are locked with SKIP LOCKED and alerts de-duplicated by a unique
    # index, so an overlap raises nothing twice.
    "alerts-evaluate": {
        "task": "apps.alerts.tasks.evaluate_all",
        "schedule": 5 * 60.0,
    },
    # Alert deliveries whose task message was lost (broker restart, killed worker) or whose lease ran
    # out: every minute, so a lost retry waits at most a minute longer than its backoff. Claims make a
    # second enqueue of the same delivery a no-op.
    "alerts-sweep-deliveries": {
        "task": "apps.alerts.tasks.sweep_deliveries",
        "schedule": 60.0,
    },
    # Seal the audit chains often enough that an operator can compare a recent
    # head with an off-site copy; sealing is cheap (one row per tenant chain).
    "audit-seal-chains": {
        "task": "apps.audit.tasks.seal_audit_chains",
        "schedule": 15 * 60.0,
    },
    # Quarterly runbooks: hourly, so a quarter's runbooks exist within the hour after it starts, a
    # tenant created mid-quarter gets its runbook within the hour, and a beat that was down on the
    # 1st catches up. Cheap when there is nothing to do (one query finds tenants without one), and
    # unique per (tenant, quarter), so an overlap opens nothing twice.
    "runbook-open-quarter": {
        "task": "apps.runbook.tasks.open_quarter_runbooks",
        "schedule": 3600.0,
    },
    # Retention: daily is as fine as retention in days needs to be. Batches are small and each its own
    # transaction, so the run never holds a long lock; it also runs right after a start-up.
    "runbook-purge-retention": {
        "task": "apps.runbook.tasks.purge_retention",
        "schedule": 24 * 3600.0,
    },
}

# Log correlation: a task enqueued during a request carries that request's id in
# a message header, and the worker binds it (or the task id) for the task's log lines.
REQUEST_ID_HEADER = "bastion_request_id"
_task_contexts: dict[str, Any] = {}


@signals.before_task_publish.connect
def _add_request_id_header(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = context.current().request_id
    if headers is not None and request_id:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@signals.task_prerun.connect
def _bind_task_context(task_id: str | None = None, task: Any = None, **kwargs: Any) -> None:
    request = getattr(task, "request", None)
    if request is None or getattr(request, "is_eager", False):
        return  # eager (tests, inline): the caller's request context stays in force
    request_id = getattr(request, REQUEST_ID_HEADER, None) or (getattr(request, "headers", None) or {}).get(
        REQUEST_ID_HEADER
    )
    request_id = request_id or task_id or ""
    if task_id:
        _task_contexts[task_id] = context.enter(request_id=str(request_id)[:64])


@signals.task_postrun.connect
def _unbind_task_context(task_id: str | None = None, **kwargs: Any) -> None:
    token = _task_contexts.pop(task_id or "", None)
    if token is not None:
        context.leave(token)
