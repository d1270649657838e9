"""SSO connections, verified e-mail domains, external identities and sign-in policy.

Connections, domains and policies exist per tenant and for the platform
itself (``tenant`` null): they inherit ``OptionalTenantOwned``, so
``objects.for_tenant(tenant)`` and ``objects.for_tenant(None)`` read one level.
Identities and the replay store hang off a connection and are scoped through it.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.db.models.functions import Now

from apps.tenants.models import OptionalTenantOwned, Tenant, TenantOwned


class SSOConnection(OptionalTenantOwned):
    """One SAML or OIDC identity provider of a tenant (or of the platform when ``tenant`` is null)."""

    class Kind(models.TextChoices):
        SAML = "saml", "SAML 2.0"
        OIDC = "oidc", "OpenID Connect"

    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"  # configured, never tested successfully
        TESTED = "tested", "Tested"  # a test sign-in succeeded; not used for sign-in yet
        ENABLED = "enabled", "Enabled"
        DISABLED = "disabled", "Disabled"

    # The public identifier in URLs (ACS, callback, metadata): never the database id.
    public_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    name = models.CharField(max_length=100, help_text="Shown on the sign-in page, e.g. “Okta” or “Entra ID”.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    # Protocol configuration. SAML: idp_entity_id, idp_sso_url, idp_slo_url, idp_x509_certs (list of PEM),
    # metadata_url, metadata_xml (last good), metadata_fetched_at, metadata_error, want_assertion_signed,
    # allow_idp_initiated. OIDC: issuer, client_id, scopes, discovery (last good document).
    config = models.JSONField(default=dict, blank=True)
    # OIDC client secret, encrypted (apps.sso.crypto); never rendered back to the browser.
    secret_encrypted = models.TextField(blank=True)
    # Attribute/claim names for email, first_name, last_name, groups (preset per IdP, editable).
    attribute_mapping = models.JSONField(default=dict, blank=True)
    # Bumped whenever an administrator changes the trust material (certificate, entity ID/issuer,
    # SSO/metadata URL, client id, JWKS): identity links made under an older epoch are not trusted.
    trust_epoch = models.PositiveIntegerField(default=1, editable=False)
    # The one connection discovery and the password-refusal message name (#9, item 4): only an
    # enabled connection can be primary, and at most one per tenant (and one for the platform).
    is_primary = models.BooleanField(default=False)
    # A draft the "Add connection" page created on its first visit, so the SP details it shows
    # never change (#9, item 1); false once the admin saved the IdP settings into it.
    setup_pending = models.BooleanField(default=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Users whose own test sign-in succeeded, with the trust epoch it was made under (``{"<user id>": epoch}``):
    # enabling needs the enabling admin's entry at the current epoch (#9, item 2).
    self_tested = models.JSONField(default=dict, blank=True)
    # The first successful test sign-in ever: a draft that never had one may be cleaned up when abandoned.
    first_tested_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant"],
                condition=models.Q(is_primary=True),
                nulls_distinct=False,  # the platform (tenant null) has one primary too
                name="sso_connection_one_primary",
            ),
            models.CheckConstraint(
                condition=~models.Q(is_primary=True) | models.Q(status="enabled"),
                name="sso_connection_primary_enabled",
            ),
            # One empty draft per (tenant, protocol, creator): reloading the add page reuses it.
            models.UniqueConstraint(
                fields=["tenant", "kind", "created_by"],
                condition=models.Q(setup_pending=True),
                nulls_distinct=False,
                name="sso_connection_one_pending_draft",
            ),
            models.CheckConstraint(condition=models.Q(kind__in=["saml", "oidc"]), name="sso_connection_kind_valid"),
            models.CheckConstraint(
                condition=models.Q(status__in=["draft", "tested", "enabled", "disabled"]),
                name="sso_connection_status_valid",
            ),
        ]
        indexes = [models.Index(fields=["tenant", "status"], name="sso_connection_tenant_status")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class VerifiedDomain(OptionalTenantOwned):
    """An e-mail domain that belongs to one tenant (or the platform); drives home-realm discovery."""

    # Several tenants may hold a pending claim on one domain (a squatter's claim blocks nobody); the
    # first to prove it by DNS (or a staff override) wins and the other claims end. Uniqueness therefore
    # holds among verified claims only, and a tenant holds at most one claim per domain (constraints).
    domain = models.CharField(max_length=253, help_text="Lowercase, IDNA-encoded, e.g. acme.com.")
    verified_at = models.DateTimeField(null=True, blank=True)
    verified_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dns_token = models.CharField(max_length=64, blank=True, help_text="Value for a TXT record bastion-verify=<token>.")
    # Automatic verification (#9, item 3): who claimed it (told of the result), how it was verified
    # ("dns": Bastion found the TXT record; "staff": a platform admin's audited override, with its
    # reason), and the last lookup (also the per-claim rate limit of "Check now").
    claimed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    verified_method = models.CharField(max_length=8, blank=True, default="")
    verified_note = models.CharField(max_length=300, blank=True, default="")
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_check_status = models.CharField(max_length=16, blank=True, default="")
    # Sign-ins from this domain go to this connection (same tenant; checked by the service) while it is
    # enabled; otherwise to the tenant's primary connection (#9, item 4).
    connection = models.ForeignKey(
        SSOConnection, null=True, blank=True, on_delete=models.SET_NULL, related_name="routed_domains"
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "domain"], name="verified_domain_tenant"),
            # Every claim on one name (claiming, first-proof verification): the unique indexes below do not lead
            # with the name alone.
            models.Index(fields=["domain"], name="verified_domain_name"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["domain"], condition=models.Q(verified_at__isnull=False), name="verified_domain_one_owner"
            ),
            # NULLS NOT DISTINCT: the platform (tenant null) also holds one claim per domain at most.
            models.UniqueConstraint(
                fields=["tenant", "domain"], nulls_distinct=False, name="verified_domain_one_claim_per_tenant"
            ),
        ]

    def __str__(self) -> str:
        return self.domain


class ExternalIdentity(models.Model):
    """Links an IdP subject (per connection) to a user: the same e-mail at another IdP is another identity."""

    connection = models.ForeignKey(SSOConnection, on_delete=models.CASCADE, related_name="identities")
    subject = models.CharField(max_length=255)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="external_identities")
    # The IdP the link was made with: its entity ID (SAML) or issuer (OIDC) and the connection's
    # trust epoch then. A link counts only while both still match: a changed IdP inherits no links.
    idp_issuer = models.CharField(max_length=1024, blank=True, default="")
    trust_epoch = models.PositiveIntegerField(default=1)
    last_sign_in_at = models.DateTimeField(null=True, blank=True)
    last_groups = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "subject"], name="external_identity_unique_subject")
        ]

    def __str__(self) -> str:
        return f"{self.subject} @ {self.connection_id}"


class SeenAssertion(models.Model):
    """Assertion / token ids already accepted, kept until they expire: refuses replays."""

    connection = models.ForeignKey(SSOConnection, on_delete=models.CASCADE, related_name="+")
    assertion_id = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["connection", "assertion_id"], name="seen_assertion_unique")]
        indexes = [models.Index(fields=["expires_at"], name="seen_assertion_expiry")]

    def __str__(self) -> str:
        return self.assertion_id


class SignInPolicy(OptionalTenantOwned):
    """A tenant's sign-in rules (one row per tenant; the platform's has ``tenant`` null)."""

    # One policy per tenant: the inherited foreign key, made one-to-one (same column, unique).
    tenant = models.OneToOneField(Tenant, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    sso_required = models.BooleanField(
        default=False, help_text="Every member must sign in through SSO (admins always must once SSO works)."
    )
    mfa_required_local = models.BooleanField(
        default=True, help_text="Password sign-ins must use a second factor (enrolment is forced first)."
    )
    mfa_required_admin_sso = models.BooleanField(
        default=False, help_text="Admins signing in through SSO must have used MFA at the IdP."
    )
    session_absolute_minutes = models.PositiveIntegerField(
        default=8 * 60, help_text="A session ends this long after sign-in, whatever happens."
    )
    session_idle_minutes = models.PositiveIntegerField(default=30, help_text="A session ends after this long unused.")
    updated_at = models.DateTimeField(db_default=Now())

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(session_absolute_minutes__gte=5, session_absolute_minutes__lte=7 * 24 * 60),
                name="signin_policy_absolute_range",
            ),
            models.CheckConstraint(
                condition=models.Q(session_idle_minutes__gte=1, session_idle_minutes__lte=24 * 60),
                name="signin_policy_idle_range",
            ),
        ]

    def __str__(self) -> str:
        return f"sign-in policy of {self.tenant_id or 'platform'}"


class EmergencyAccount(TenantOwned):
    """A local break-glass account of one tenant for when its IdP is down (#11, item 8; ``apps.sso.emergency``).

    Its ``user`` is made for it alone (login e-mail under ``SSO_EMERGENCY_LOGIN_DOMAIN``), holds one
    membership (of ``tenant``), signs in with a generated password *and* TOTP or WebAuthn, and is
    exempt from the tenant's "SSO required" there only. Deleting the user deletes this row.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    label = models.CharField(max_length=60, help_text="Where the credentials are kept, e.g. “Safe, envelope A”.")
    role = models.CharField(max_length=16, help_text="The built-in role it was created with.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(db_default=Now(), editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["tenant", "created_at"], name="emergency_account_tenant")]
        constraints = [models.UniqueConstraint(fields=["tenant", "label"], name="emergency_account_label_unique")]

    def __str__(self) -> str:
        return self.label

    @property
    def is_disabled(self) -> bool:
        return self.disabled_at is not None


class EmergencySignIn(TenantOwned):
    """One successful sign-in of an emergency account: on the dashboard until an Owner acknowledges it."""

    # SET_NULL: the record (and its label) outlives a deleted account; an Owner still acknowledges it.
    account = models.ForeignKey(
        EmergencyAccount, null=True, blank=True, on_delete=models.SET_NULL, related_name="sign_ins"
    )
    label = models.CharField(max_length=60)
    login = models.CharField(max_length=254)
    occurred_at = models.DateTimeField(db_default=Now(), editable=False)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)
    mfa_type = models.CharField(max_length=16, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [
            # The dashboard card: a tenant's unacknowledged sign-ins, newest first.
            models.Index(
                fields=["tenant", "-occurred_at"],
                condition=models.Q(acknowledged_at__isnull=True),
                name="emergency_signin_open",
            ),
            models.Index(fields=["tenant", "account", "-occurred_at"], name="emergency_signin_account"),
        ]

    def __str__(self) -> str:
        return f"{self.label} at {self.occurred_at:%Y-%m-%d %H:%M}"
