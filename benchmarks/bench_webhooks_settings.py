"""Settings of the webhook benchmarks' gunicorn and worker: the dev settings, production-like where speed matters.

No DEBUG (no query log), WhiteNoise without autorefresh, known webhook secrets, a
private Celery queue (so the benchmark never feeds another worker on the same broker),
and the bare view the intake is compared with.
"""

from __future__ import annotations

from config.settings.dev import *  # noqa: F403

DEBUG = False
WHITENOISE_AUTOREFRESH = False
ROOT_URLCONF = "benchmarks.bench_api_urls"  # the site plus /bench/bare
STRIPE_WEBHOOK_SECRETS = ["whsec_bench_0123456789abcdef"]
ADYEN_HMAC_KEYS = ["44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"]
CELERY_TASK_DEFAULT_QUEUE = "bastion-bench-webhooks"
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
LOGGING["loggers"]["bastion.access"] = {"level": "WARNING"}  # noqa: F405  # no access line per request
