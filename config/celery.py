"""The Celery application and the one place every periodic schedule lives."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")

app = Celery("bastion")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Periodic work. Each entry says why it runs when it does. django-celery-beat's
# DatabaseScheduler reads this dict at start-up and keeps it in its tables.
app.conf.beat_schedule = {
    # Seal the audit chains often enough that an operator can compare a recent
    # head with an off-site copy; sealing is cheap (one row per tenant chain).
    "audit-seal-chains": {
        "task": "apps.audit.tasks.seal_audit_chains",
        "schedule": 15 * 60.0,
    },
}
