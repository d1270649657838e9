"""Local development and the embedded `make run` console."""

from __future__ import annotations

from config.settings.base import *  # noqa: F403
from config.settings.env import env, env_bool, env_secret

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = env_secret("SECRET_KEY", "") or "dev-only-insecure-key-change-me-0123456789abcdef"
AUDIT_HMAC_KEY = env_secret("AUDIT_HMAC_KEY", "") or SECRET_KEY
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = True
# base.py read DEBUG before this module set it: the development default follows DEBUG here.
ALERTS_WEBHOOK_ALLOW_LOOPBACK = env_bool("ALERTS_WEBHOOK_ALLOW_LOOPBACK", DEBUG)
WHITENOISE_AUTOREFRESH = True
