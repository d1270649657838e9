"""Fast, deterministic settings for the test suite (real PostgreSQL, real broker)."""

from __future__ import annotations

import os

from config.settings.base import *  # noqa: F403
from config.settings.env import env

DEBUG = False
SECRET_KEY = "test-secret-key-not-for-production-0123456789abcdef"  # noqa: S105
AUDIT_HMAC_KEY = "test-audit-hmac-key-0123456789abcdef"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1", "bastion.example.com"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Tests talk to a real broker (Redis by default) so that task paths are exercised end to end.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/15")
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
# Most tests run tasks inline; tests marked "celery" switch this off and use a
# real worker on the real broker (see tests/conftest.py).
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
WHITENOISE_AUTOREFRESH = True
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
# The loopback OIDC provider of the tests speaks plain http on 127.0.0.1.
SSO_ALLOW_INSECURE_LOOPBACK = True
# No test asks the machine's resolver: by default domain checks go to a loopback port where no
# server listens (they fail fast, never verify); tests that need DNS start their own server.
SSO_DNS_NAMESERVER = "127.0.0.1"
SSO_DNS_PORT = 9
SSO_DNS_TIMEOUT = 1.0
# Tests read denial rows right after the decision: write them on the caller's thread.
ACCESS_DENIAL_LOG_FLUSH_MS = 0
# Webhook tasks are published on the caller's thread at once (one message per stored event).
BILLING_WEBHOOK_ENQUEUE_BATCH_MS = 0

# Each pytest-xdist worker has its own test database, whose ids start at 1 like every other worker's:
# Redis keys built from ids (budget counters, API buckets) get a namespace per worker, so parallel
# workers sharing one Redis database never count into each other's keys.
REDIS_KEY_NAMESPACE = f"bastion-test-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
