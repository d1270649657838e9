"""Production: every required value must come from the environment, or start-up fails."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from config.settings.base import *  # noqa: F403
from config.settings.env import env, env_bool, env_secret

_REQUIRED = ("SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "ALLOWED_HOSTS")
_missing = [name for name in _REQUIRED if not (env_secret(name) or "").strip()]
if _missing:
    raise ImproperlyConfigured(f"Production settings need these environment variables: {', '.join(_missing)}")

DEBUG = False
SECRET_KEY = env_secret("SECRET_KEY")
if len(SECRET_KEY or "") < 50:
    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long in production")
# The audit chain's key is its own secret: never SECRET_KEY (a leak of one must not
# yield the other), never the SSO key. apps.audit.chain derives per-purpose keys from it.
AUDIT_HMAC_KEY = (env_secret("AUDIT_HMAC_KEY", "") or "").strip()
if not AUDIT_HMAC_KEY:
    raise ImproperlyConfigured("Production settings need AUDIT_HMAC_KEY, a secret of its own for the audit chain")
if len(AUDIT_HMAC_KEY) < 32:
    raise ImproperlyConfigured("AUDIT_HMAC_KEY must be at least 32 characters long in production")
if AUDIT_HMAC_KEY == SECRET_KEY:
    raise ImproperlyConfigured("AUDIT_HMAC_KEY must differ from SECRET_KEY")
if (env_secret("SSO_SECRET_KEY", "") or "").strip() == AUDIT_HMAC_KEY:
    raise ImproperlyConfigured("AUDIT_HMAC_KEY must differ from SSO_SECRET_KEY")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS")
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")

SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_NAME = "__Host-sessionid"
CSRF_COOKIE_NAME = "__Host-csrftoken"

# The SP entity id and ACS URL must not depend on which Host header a request carried.
SITE_URL = env.str("SITE_URL", default="https://" + ALLOWED_HOSTS[0])
SSO_BASE_URL = env.str("SSO_BASE_URL", default="") or SITE_URL
