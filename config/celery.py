"""The Celery application and the one place every periodic schedule lives."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery, signals

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
    # Seal the audit chains often enough that an operator can compare a recent
    # head with an off-site copy; sealing is cheap (one row per tenant chain).
    "audit-seal-chains": {
        "task": "apps.audit.tasks.seal_audit_chains",
        "schedule": 15 * 60.0,
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
