"""API clients, their secrets, the per-tenant token policy and the platform's signing keys."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models.functions import Now
from django.utils import timezone

from apps.tenants.models import OptionalTenantOwned, TenantOwned

MAX_TOKEN_LIFETIME = 15 * 60  # seconds; a tenant may choose less, never more


class ApiClient(TenantOwned):
    """A tenant's machine identity: authenticates with a secret, acts with one role."""

    class Status(models.TextChoices):
        # The same value as an active membership: ``access`` gates any subject on ``status == "active"``.
        ACTIVE = "active", "Active"
        DISABLED = "disabled", "Disabled"

    name = models.CharField(max_length=80)
    # Public identifier sent as ``client_id``; unique across the installation (tokens name it in ``sub``).
    client_id = models.CharField(max_length=64, unique=True, editable=False)
    # The role it acts as: a built-in role key, or a custom role of the tenant (exactly one).
    builtin_role = models.CharField(max_length=16, blank=True)
    role = models.ForeignKey("access.Role", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    # Audiences it may ask a token for; empty = the default API audience only.
    audiences = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    signing_alg = models.CharField(max_length=8, default="ES256", choices=[("ES256", "ES256"), ("RS256", "RS256")])
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    # The guardian identity that holds the client's own object grants (like a role's group).
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="bastion_api_client")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    disabled_at = models.DateTimeField(null=True, blank=True)
    # Tokens issued before this are refused even after a re-enable (set by every disable).
    tokens_not_before = models.DateTimeField(null=True, blank=True)
    # Written at most once a minute per client (the token endpoint), never per API call.
    last_used_at = models.DateTimeField(null=True, blank=True)
    # The runtime API's token bucket for this client; null = the tenant's policy, else the installation default.
    rate_limit_per_minute = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="Requests a minute this client may make to the API (bursts up to the same number). "
        "Empty: the tenant's limit, else the installation default.",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="apiclient_unique_name_per_tenant"),
            models.CheckConstraint(
                condition=(models.Q(role__isnull=True) & ~models.Q(builtin_role=""))
                | (models.Q(role__isnull=False) & models.Q(builtin_role="")),
                name="apiclient_one_role",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=["active", "disabled"]), name="apiclient_status_valid"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="apiclient_tenant_status")]

    def __str__(self) -> str:
        return self.name

    # --- the subject protocol of apps.access.subjects ------------------------------------------
    subject_type = "client"

    @property
    def subject_label(self) -> str:
        return f"API client {self.name} ({self.client_id})"

    @property
    def role_key(self) -> str:
        return self.builtin_role


class ClientSecret(TenantOwned):
    """One secret of a client, stored only as a keyed hash; at most two are valid during a rotation."""

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="secrets")
    digest = models.CharField(max_length=64)  # hex HMAC-SHA256 (apps.keys.crypto.secret_digest)
    hint = models.CharField(max_length=12)  # the last characters, so an admin can tell secrets apart
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    # Set when a newer secret replaced it: it stays valid until then (the overlap).
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["tenant", "client"], name="clientsecret_tenant_client")]

    def __str__(self) -> str:
        return f"…{self.hint}"


class TokenPolicy(TenantOwned):
    """A tenant's token settings (absent row = the defaults)."""

    token_lifetime = models.PositiveIntegerField(default=MAX_TOKEN_LIFETIME)
    # Each client's API rate limit unless the client sets its own; null = the installation default.
    rate_limit_per_minute = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], name="tokenpolicy_one_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(token_lifetime__gte=60, token_lifetime__lte=MAX_TOKEN_LIFETIME),
                name="tokenpolicy_lifetime_range",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.token_lifetime}s"


class TokenUse(TenantOwned):
    """How often a client used the API in one hour for one audience (flushed in batches from Redis).

    One row per (client, audience, hour); a flush adds its counts to the row
    (``services.token_use_record``). Failures are not counted here: each one is
    an audit event of its own (``apiclient.token_rejected``).
    """

    client = models.ForeignKey(ApiClient, on_delete=models.CASCADE, related_name="+")
    audience = models.CharField(max_length=200)
    hour = models.DateTimeField()  # the start of the hour, UTC
    count = models.BigIntegerField(default=0)
    limited = models.BigIntegerField(default=0)  # of which refused by the rate limit
    last_ip = models.CharField(max_length=45, blank=True)
    last_user_agent = models.CharField(max_length=256, blank=True)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-hour", "audience"]
        constraints = [
            models.UniqueConstraint(fields=["client", "audience", "hour"], name="tokenuse_one_per_client_aud_hour"),
        ]
        indexes = [models.Index(fields=["tenant", "client", "-hour"], name="tokenuse_tenant_client_hour")]

    def __str__(self) -> str:
        return f"{self.client_id} {self.audience} {self.hour:%Y-%m-%d %H}:00 x{self.count}"


class TokenUseBatch(models.Model):
    """A flushed batch of token-use counts, by its claim id: a batch is added to ``TokenUse`` once, ever.

    The flush claims a Redis hash under a unique name, writes it, then deletes
    it. The batch row is inserted in the same transaction as the counts, so a
    flush that dies after the commit and before the delete, or two flushers
    on the same orphaned claim, find the row and skip the batch.
    """

    batch_id = models.CharField(max_length=120, primary_key=True)
    rows = models.PositiveIntegerField(default=0)
    recorded_at = models.DateTimeField(db_default=Now())

    def __str__(self) -> str:
        return self.batch_id


class SigningKey(models.Model):
    """One asymmetric key that signs access tokens (the platform's, shared by all tenants).

    Life: ``next`` (published in the JWKS, signs nothing) → ``active`` (signs)
    → ``retired`` (published until ``publish_until``, the expiry of the last
    token it can have signed) → removed from the JWKS. ``revoked`` is the
    emergency end: unpublished and refused at once.
    """

    class Status(models.TextChoices):
        NEXT = "next", "Next"
        ACTIVE = "active", "Active"
        RETIRED = "retired", "Retired"
        REVOKED = "revoked", "Revoked"

    kid = models.CharField(max_length=64, unique=True)
    alg = models.CharField(max_length=8)
    public_jwk = models.JSONField()
    private_key = models.TextField()  # PEM, Fernet-encrypted (apps.keys.crypto)
    status = models.CharField(max_length=16, choices=Status.choices)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    activates_at = models.DateTimeField()  # when a ``next`` key starts signing
    activated_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    publish_until = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["next", "active", "retired", "revoked"]), name="signingkey_status_valid"
            ),
            models.CheckConstraint(condition=models.Q(alg__in=["ES256", "RS256"]), name="signingkey_alg_valid"),
            # One active key per algorithm: two processes switching at once cannot both win.
            models.UniqueConstraint(
                fields=["alg"], condition=models.Q(status="active"), name="signingkey_one_active_per_alg"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.alg}, {self.status})"


# --- provider credentials: references, rotation dates and reminders (#13) -----------------------

DUE_SOON_DAYS = 14  # the first rotation reminder: "due soon" from here on


class Credential(TenantOwned):
    """A reference to one provider or tool secret of a tenant (never the value), with its rotation schedule.

    ``reference`` names where the secret lives (``vault://<mount>/<path>#<field>``,
    ``env://NAME``; see ``apps.keys.secretstores``). ``next_due_on`` is kept by the
    services: (last rotation, else creation) + ``rotation_interval_days``.
    """

    class Environment(models.TextChoices):
        DEV = "dev", "Development"
        STAGING = "staging", "Staging"
        PROD = "prod", "Production"

    class CheckStatus(models.TextChoices):
        NEVER = "never", "Never checked"
        OK = "ok", "Resolved"
        NOT_FOUND = "not_found", "Not found"
        DENIED = "denied", "Permission denied"
        SEALED = "sealed", "Vault sealed"
        UNREACHABLE = "unreachable", "Vault unreachable"
        NOT_CONFIGURED = "not_configured", "Backend not configured"
        INVALID = "invalid", "Invalid reference"
        ERROR = "error", "Error"

    name = models.CharField(max_length=80)
    provider = models.CharField(max_length=40)
    environment = models.CharField(max_length=8, choices=Environment.choices, default=Environment.PROD)
    purpose = models.CharField(max_length=300, blank=True)
    # The member responsible for rotating it (reminders go to them first).
    owner = models.ForeignKey("tenants.Membership", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    reference = models.CharField(max_length=500)
    rotation_interval_days = models.PositiveIntegerField(default=90)
    last_rotated_at = models.DateTimeField(null=True, blank=True)
    next_due_on = models.DateField()
    # The last "check": whether the reference resolved and the secret's metadata (never its value).
    last_check_at = models.DateTimeField(null=True, blank=True)
    last_check_status = models.CharField(max_length=16, choices=CheckStatus.choices, default=CheckStatus.NEVER)
    last_check_detail = models.CharField(max_length=300, blank=True)
    last_check_version = models.PositiveIntegerField(null=True, blank=True)
    last_check_created_time = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["next_due_on", "name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"], name="credential_unique_name_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(rotation_interval_days__gte=1, rotation_interval_days__lte=3650),
                name="credential_interval_range",
            ),
            models.CheckConstraint(
                condition=models.Q(environment__in=["dev", "staging", "prod"]), name="credential_environment_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "next_due_on", "id"], name="credential_tenant_due"),
            models.Index(fields=["tenant", "name", "id"], name="credential_tenant_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.provider}, {self.environment})"

    @property
    def days_left(self) -> int:
        """Days until the due date (negative: overdue), in UTC days."""
        return (self.next_due_on - timezone.now().date()).days

    @property
    def days_overdue(self) -> int:
        return max(0, -self.days_left)

    @property
    def due_state(self) -> str:
        """ "overdue", "soon" (within the first reminder, 14 days) or "ok"."""
        days = self.days_left
        return "overdue" if days < 0 else "soon" if days <= DUE_SOON_DAYS else "ok"


class CredentialRotation(TenantOwned):
    """One rotation of a credential: written to the vault by Bastion, or recorded as done elsewhere."""

    class Method(models.TextChoices):
        VAULT_WRITE = "vault_write", "Written to the vault by Bastion"
        RECORDED = "recorded", "Recorded (rotated elsewhere)"

    credential = models.ForeignKey(Credential, on_delete=models.CASCADE, related_name="rotations")
    method = models.CharField(max_length=16, choices=Method.choices)
    rotated_at = models.DateTimeField()
    rotated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)
    # The secret's version after the rotation when Bastion wrote it (KV v2), else null.
    new_version = models.PositiveIntegerField(null=True, blank=True)
    recorded_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        ordering = ["-rotated_at", "-id"]
        indexes = [models.Index(fields=["tenant", "credential", "-rotated_at"], name="credrotation_tenant_cred")]

    def __str__(self) -> str:
        return f"{self.credential_id} rotated {self.rotated_at:%Y-%m-%d} ({self.method})"


class CredentialSettings(TenantOwned):
    """A tenant's credential settings (absent row = the defaults: Bastion never writes to the vault)."""

    # Whether "Rotate now" may write a new secret version to the vault for this tenant.
    allow_vault_writes = models.BooleanField(default=False)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="credentialsettings_one_per_tenant")]

    def __str__(self) -> str:
        return f"vault writes {'on' if self.allow_vault_writes else 'off'}"


class RotationReminder(OptionalTenantOwned):
    """One reminder, claimed before it is sent: unique per (subject, due date, step).

    The reminder run inserts the row with ``INSERT … ON CONFLICT DO NOTHING``;
    only the run whose insert created it delivers it, so two runs at once or a
    retried run never send the same step twice. Delivery: ``pending`` → claimed
    (``lease_until`` in the future) → ``sent``. A delivery that died mid-way is
    picked up again once its lease ran out (see ``apps.keys.reminders``).
    ``tenant`` null: one of the platform's own secrets (signing keys).
    """

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    # What is due: "credential:<id>", "signing_key:<kid>", "idp_cert:<connection id>:<sha256>", …
    subject_key = models.CharField(max_length=200)
    subject_label = models.CharField(max_length=300)
    due_on = models.DateField()
    # "due_14", "due_7", "due_1", "overdue" (to the owner), "escalated" (to the admins, 7 days overdue),
    # "failed" (an automatic rotation that did not happen).
    step = models.CharField(max_length=16)
    credential = models.ForeignKey(Credential, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    recipients = ArrayField(models.CharField(max_length=254), default=list, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["subject_key", "due_on", "step"], name="rotationreminder_once"),
            models.CheckConstraint(
                condition=models.Q(status__in=["pending", "sent", "failed"]), name="rotationreminder_status_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["tenant", "-created_at"], name="rotationreminder_tenant_new"),
            models.Index(
                fields=["tenant", "status", "lease_until"],
                condition=models.Q(status="pending"),
                name="rotationreminder_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject_key} {self.due_on} {self.step} ({self.status})"
