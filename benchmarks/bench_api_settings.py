"""Settings of the API benchmark's gunicorn: the dev settings, production-like where it matters for speed.

No DEBUG (no query log), WhiteNoise without autorefresh, the shared cache and the
rate limiter in Redis (as in production), a rate limit the load cannot reach, and
one extra route: the bare JSON view the runtime API is compared with.
"""

from __future__ import annotations

from config.settings.dev import *  # noqa: F403

DEBUG = False
WHITENOISE_AUTOREFRESH = False
ROOT_URLCONF = "benchmarks.bench_api_urls"
API_RATE_LIMIT_PER_MINUTE = 100_000_000
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
LOGGING["loggers"]["bastion.access"] = {"level": "WARNING"}  # noqa: F405  # no access line per request
