"""SSO connection writes: create, update, status, delete, refresh request; trust changes.

A configuration is validated and built (``apps.sso.services.connection_config``:
metadata parsed or downloaded, OIDC discovery run) before any transaction
opens, so a slow IdP never holds a row lock and a refused configuration
writes nothing. The OIDC client secret is
stored encrypted; only ``client_secret`` decrypts it, for the protocol call.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import record
from apps.sso import crypto, selectors
from apps.sso.models import ExternalIdentity, SSOConnection
from apps.sso.policy import sessions_enforce_policy
from apps.sso.services._common import (
    _CONTROL_RE,
    NAME_MAX,
    SSOInputError,
    _audit_actor,
    _lock_connection,
)
from apps.sso.services.connection_config import (
    OIDCSettings,
    SAMLSettings,
    check_client_secret,
    clean_attribute_mapping,
    oidc_config_build,
    saml_config_build,
)
from apps.sso.services.notices import STAFF_DISABLED, TRUST_CHANGED, notice_enqueue
from apps.sso.services.routing import primary_ensure
from apps.tenants.models import Tenant

# Keys whose change means the connection talks to a different IdP (or differently): a new test is needed.
_PROTOCOL_KEYS = {
    SSOConnection.Kind.SAML: ("idp_entity_id", "idp_sso_url", "idp_x509_certs", "want_assertion_signed"),
    SSOConnection.Kind.OIDC: ("issuer", "client_id", "scopes"),
}
# Trust material: what decides *which* IdP's word is accepted. A change returns the connection to
# draft (a new successful test before it can be enabled), bumps its trust epoch so no identity link
# carries over, and, for an enabled connection, is audited as high severity and e-mailed to every
# Owner (#7, item 3). Nested keys are "discovery.<name>".
_TRUST_KEYS = {
    SSOConnection.Kind.SAML: ("idp_entity_id", "idp_sso_url", "idp_x509_certs", "metadata_url"),
    SSOConnection.Kind.OIDC: ("issuer", "client_id", "discovery.jwks_uri", "discovery.token_endpoint"),
}


def _trust_value(config: dict[str, Any], key: str) -> Any:
    if key.startswith("discovery."):
        return (config.get("discovery") or {}).get(key.split(".", 1)[1])
    value = config.get(key)
    return value or None  # "" and a missing key are the same: no metadata URL


def _trust_changes(kind: str, before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Names of the trust-material keys that differ between two configurations."""
    return [key for key in _TRUST_KEYS.get(kind, ()) if _trust_value(before, key) != _trust_value(after, key)]


# Keys the system maintains between edits (tests, metadata refreshes); an edit carries them over.
_RUNTIME_KEYS = (
    "tested_at",
    "idp_cert_expiry_warned",
    "metadata_error",
    "metadata_error_at",
    "metadata_error_notified",
)


# What an absent key means (the protocol modules apply the same defaults).
_PROTOCOL_DEFAULTS: dict[str, Any] = {"want_assertion_signed": True}


def _protocol_changed(kind: str, before: dict[str, Any], after: dict[str, Any]) -> bool:
    def value(config: dict[str, Any], key: str) -> Any:
        return config.get(key, _PROTOCOL_DEFAULTS.get(key))

    return any(value(before, key) != value(after, key) for key in _PROTOCOL_KEYS.get(kind, ()))


def _clean_name(*, tenant: Tenant | None, name: str, exclude_id: int | None = None) -> str:
    cleaned = (name or "").strip()
    if not cleaned:
        raise SSOInputError("Give the connection a name, e.g. “Okta”.", field="name")
    if len(cleaned) > NAME_MAX or _CONTROL_RE.search(cleaned):
        raise SSOInputError(f"The name is at most {NAME_MAX} printable characters.", field="name")
    if selectors.connection_name_taken(tenant=tenant, name=cleaned, exclude_id=exclude_id):
        raise SSOInputError("Another connection already has this name.", field="name")
    return cleaned


def _enqueue_metadata_refresh(connection_id: int) -> None:
    from apps.sso.tasks import refresh_saml_metadata

    refresh_saml_metadata.delay(connection_id)


def _after_commit_refresh(connection: SSOConnection) -> None:
    if connection.kind == SSOConnection.Kind.SAML and (connection.config or {}).get("metadata_url"):
        # robust: a broker outage must not turn a saved connection into a 500; the periodic refresh catches up.
        transaction.on_commit(functools.partial(_enqueue_metadata_refresh, connection.pk), robust=True)


# --- connections --------------------------------------------------------------------------------


def connection_create(
    *,
    tenant: Tenant | None,
    kind: str,
    name: str,
    saml: SAMLSettings | None = None,
    oidc_settings: OIDCSettings | None = None,
    attribute_mapping: dict[str, Any] | None = None,
    preset: str = "",
    public_id: uuid.UUID | None = None,
    draft: SSOConnection | None = None,
    actor: User | None,
) -> SSOConnection:
    """Create a draft connection of ``tenant`` (the platform's for None; enabled only after a successful test).

    SAML: from metadata XML, a metadata URL (downloaded now, then refreshed
    by the worker) or manual entity ID / SSO URL / certificate. OIDC: issuer
    (discovery fetched and checked now), client id, client secret (stored
    encrypted), scopes. ``draft`` is the empty draft the add page opened
    (``connection_draft_open``): the settings are saved into it, so the SP
    details shown before saving stay the same. Raises SSOInputError; nothing
    is written then.
    """
    if kind not in SSOConnection.Kind.values:
        raise SSOInputError("Choose SAML or OpenID Connect.", field="kind")
    name = _clean_name(tenant=tenant, name=name)
    mapping = clean_attribute_mapping(attribute_mapping, kind=kind, preset=preset)
    secret_encrypted = ""
    if kind == SSOConnection.Kind.SAML:
        if saml is None:
            raise SSOInputError("Enter the identity provider's settings.")
        config = saml_config_build(saml)
    else:
        if oidc_settings is None:
            raise SSOInputError("Enter the provider's settings.")
        secret = check_client_secret(oidc_settings.client_secret or "")
        if not secret:
            raise SSOInputError("Enter the client secret from your identity provider.", field="client_secret")
        config = oidc_config_build(oidc_settings)
        secret_encrypted = crypto.encrypt(secret)
    with transaction.atomic():
        # Checked again inside the transaction: the network part above may have taken seconds.
        name = _clean_name(tenant=tenant, name=name)
        if draft is not None:
            connection = _fill_draft(
                draft,
                tenant=tenant,
                kind=kind,
                name=name,
                config=config,
                secret_encrypted=secret_encrypted,
                mapping=mapping,
            )
            record(
                "sso.connection_create",
                tenant=tenant,
                actor=_audit_actor(actor),
                target=connection,
                metadata={"before": None, "after": selectors.connection_snapshot(connection)},
            )
            _after_commit_refresh(connection)
            return connection
        if public_id is not None and SSOConnection.objects.filter(public_id=public_id).exists():
            raise SSOInputError("This form was already used to create a connection; open the connection instead.")
        connection = SSOConnection.objects.create(
            public_id=public_id or uuid.uuid4(),
            tenant=tenant,
            kind=kind,
            name=name,
            status=SSOConnection.Status.DRAFT,
            config=config,
            secret_encrypted=secret_encrypted,
            attribute_mapping=mapping,
        )
        record(
            "sso.connection_create",
            tenant=tenant,
            actor=_audit_actor(actor),
            target=connection,
            metadata={"before": None, "after": selectors.connection_snapshot(connection)},
        )
        _after_commit_refresh(connection)
    return connection


def _fill_draft(
    draft: SSOConnection,
    *,
    tenant: Tenant | None,
    kind: str,
    name: str,
    config: dict[str, Any],
    secret_encrypted: str,
    mapping: dict[str, Any],
) -> SSOConnection:
    """Save the first settings into the add page's draft (locked); refused if already saved or not this form's."""
    locked = SSOConnection.objects.select_for_update().filter(pk=draft.pk).first()
    if locked is None or not locked.setup_pending:
        raise SSOInputError("This form was already used to create a connection; open the connection instead.")
    if locked.tenant_id != (tenant.pk if tenant is not None else None) or locked.kind != kind:
        raise SSOInputError("This draft belongs to another form; open the add page again.")
    locked.name = name
    locked.config = config
    locked.secret_encrypted = secret_encrypted
    locked.attribute_mapping = mapping
    locked.setup_pending = False
    locked.updated_at = timezone.now()
    locked.save(
        update_fields=["name", "config", "secret_encrypted", "attribute_mapping", "setup_pending", "updated_at"]
    )
    return locked


def connection_update(
    *,
    connection: SSOConnection,
    name: str,
    saml: SAMLSettings | None = None,
    oidc_settings: OIDCSettings | None = None,
    attribute_mapping: dict[str, Any] | None = None,
    preset: str = "",
    actor: User | None,
) -> SSOConnection:
    """Change a connection's name, IdP settings and attribute mapping; audited with before/after.

    The IdP settings are validated (and fetched/discovered) exactly as on
    create; if that fails nothing changes. An empty OIDC client secret keeps
    the stored one. If the IdP settings change, the connection needs a new
    successful test before it can be enabled again. A change of trust material
    (``_TRUST_KEYS``: certificate, entity ID/issuer, SSO or metadata URL,
    client id, JWKS or token endpoint) returns even an enabled connection to
    draft, bumps its trust epoch (no identity link carries over) and is
    audited as ``sso.connection_trust_change``; for a connection that was
    enabled, with high severity and an e-mail to every Owner. Raises SSOInputError.
    """
    kind = connection.kind
    name = _clean_name(tenant=connection.tenant, name=name, exclude_id=connection.pk)
    mapping = clean_attribute_mapping(attribute_mapping, kind=kind, preset=preset)
    new_secret = ""
    if kind == SSOConnection.Kind.SAML:
        if saml is None:
            raise SSOInputError("Enter the identity provider's settings.")
        config = saml_config_build(saml, previous=connection.config)
    else:
        if oidc_settings is None:
            raise SSOInputError("Enter the provider's settings.")
        new_secret = check_client_secret(oidc_settings.client_secret or "")
        config = oidc_config_build(oidc_settings, previous=connection.config)
    with transaction.atomic():
        locked = _lock_connection(connection)
        before = selectors.connection_snapshot(locked)
        old_config = dict(locked.config or {})
        trust_changed = _trust_changes(kind, old_config, config)
        retest = bool(trust_changed) or _protocol_changed(kind, old_config, config) or bool(new_secret)
        for key in _RUNTIME_KEYS:
            if key in old_config:
                config.setdefault(key, old_config[key])
        if kind == SSOConnection.Kind.SAML and config.get("metadata_url") == old_config.get("metadata_url"):
            for key in ("metadata_error", "metadata_error_at"):
                config.pop(key, None)  # the download just succeeded
        status_before = locked.status
        if retest:
            config.pop("tested_at", None)
            if locked.status == SSOConnection.Status.TESTED:
                locked.status = SSOConnection.Status.DRAFT
        if trust_changed:
            # Whatever the status: an enabled connection stops signing people in until tested again.
            locked.status = SSOConnection.Status.DRAFT
            locked.is_primary = False  # only an enabled connection is primary; primary_ensure promotes another
            locked.trust_epoch += 1
        locked.name = _clean_name(tenant=locked.tenant, name=name, exclude_id=locked.pk)
        locked.config = config
        locked.attribute_mapping = mapping
        if new_secret:
            locked.secret_encrypted = crypto.encrypt(new_secret)
        locked.updated_at = timezone.now()
        locked.save(
            update_fields=[
                "name",
                "config",
                "attribute_mapping",
                "secret_encrypted",
                "status",
                "trust_epoch",
                "is_primary",
                "updated_at",
            ]
        )
        primary_ensure(tenant_id=locked.tenant_id)
        record(
            "sso.connection_update",
            tenant=locked.tenant,
            actor=_audit_actor(actor),
            target=locked,
            metadata={
                "before": before,
                "after": selectors.connection_snapshot(locked),
                "client_auth_changed": bool(new_secret),
                "needs_new_test": retest,
                "trust_changed": trust_changed,
            },
        )
        if trust_changed:
            _record_trust_change(locked, actor=actor, changed=trust_changed, status_before=status_before)
        _after_commit_refresh(locked)
    return locked


def _record_trust_change(
    connection: SSOConnection, *, actor: User | None, changed: list[str], status_before: str
) -> None:
    """Audit a change of trust material; if the connection was in use, high severity and a notice to every Owner."""
    was_enabled = status_before == SSOConnection.Status.ENABLED
    detail = {
        "changed": changed,
        "status_before": status_before,
        "trust_epoch": connection.trust_epoch,
        "severity": "high" if was_enabled else "normal",
        "by": actor.email if actor is not None else "system",
    }
    record(
        "sso.connection_trust_change",
        tenant=connection.tenant,
        actor=_audit_actor(actor),
        target=connection,
        metadata=detail,
    )
    if was_enabled:
        notice_enqueue(connection_id=connection.pk, event=TRUST_CHANGED, detail=detail)


def connection_set_status(
    *, connection: SSOConnection, enabled: bool, actor: User | None, lockout_acknowledged: bool = False
) -> SSOConnection:
    """Enable (people can sign in with it) or disable a connection; audited.

    Enabling ends password access for the tenant's administrators (and every
    member under "SSO required"), so it is refused unless (#9, item 2):
    ``lockout_acknowledged`` (the admin saw who loses password access,
    ``selectors.password_access_losers``), and ``actor`` completed a successful
    test sign-in *as themself* through this connection since its trust material
    last changed (``self_tested`` at the current trust epoch): the admin has
    proven they can still get in. The first enabled connection becomes primary.
    After enabling, sessions the policy now refuses are ended
    (``sessions_enforce_policy``). Disabling applies to an enabled connection.
    Raises SSOInputError when a rule refuses.
    """
    with transaction.atomic():
        locked = _lock_connection(connection)
        before = locked.status
        if enabled:
            if locked.status == SSOConnection.Status.ENABLED:
                return locked
            _check_can_enable(locked, actor=actor, lockout_acknowledged=lockout_acknowledged)
            locked.status = SSOConnection.Status.ENABLED
        else:
            if locked.status != SSOConnection.Status.ENABLED:
                raise SSOInputError("Only an enabled connection can be disabled.")
            locked.status = SSOConnection.Status.DISABLED
            locked.is_primary = False
        locked.updated_at = timezone.now()
        locked.save(update_fields=["status", "is_primary", "updated_at"])
        primary = primary_ensure(tenant_id=locked.tenant_id)
        locked.is_primary = primary is not None and primary.pk == locked.pk
        record(
            "sso.connection_enable" if enabled else "sso.connection_disable",
            tenant=locked.tenant,
            actor=_audit_actor(actor),
            target=locked,
            metadata={
                "before": {"status": before},
                "after": {"status": locked.status, "primary": locked.is_primary},
                "name": locked.name,
            },
        )
        if enabled:
            sessions_enforce_policy(tenant=locked.tenant, actor=actor, cause="sso.connection_enable")
    return locked


def _check_can_enable(connection: SSOConnection, *, actor: User | None, lockout_acknowledged: bool) -> None:
    if not (connection.config or {}).get("tested_at"):
        raise SSOInputError("Run a successful test sign-in first: a connection is enabled only once it has worked.")
    if actor is None or (connection.self_tested or {}).get(str(actor.pk)) != connection.trust_epoch:
        raise SSOInputError(
            "Sign in through this connection as yourself first (Test sign-in, with your own account at the "
            "identity provider): enabling ends password sign-in for administrators, and this proves you can "
            "still get in."
        )
    if not lockout_acknowledged:
        raise SSOInputError("Confirm that you have seen who will lose password access.")


def connection_staff_disable(*, connection: SSOConnection, actor: User, reason: str) -> SSOConnection:
    """Platform staff switch a tenant's enabled connection off (a locked-out tenant's way back in).

    Audited as high severity on the tenant's chain, and e-mailed to the tenant's
    owners by a task after commit. Its members can use passwords again (with
    MFA) unless another enabled connection remains. Raises SSOInputError.
    """
    reason = (reason or "").strip()
    if not reason or len(reason) > 500 or _CONTROL_RE.search(reason):
        raise SSOInputError("Say why (at most 500 printable characters); the tenant's owners are told.", field="reason")
    if not getattr(actor, "is_staff", False):
        raise SSOInputError("Only platform staff can do this.")
    with transaction.atomic():
        locked = _lock_connection(connection)
        if locked.tenant_id is None:
            raise SSOInputError("Use the platform's own SSO settings for the platform's connections.")
        if locked.status != SSOConnection.Status.ENABLED:
            raise SSOInputError("Only an enabled connection can be disabled.")
        locked.status = SSOConnection.Status.DISABLED
        locked.is_primary = False
        locked.updated_at = timezone.now()
        locked.save(update_fields=["status", "is_primary", "updated_at"])
        primary_ensure(tenant_id=locked.tenant_id)
        detail = {"reason": reason, "by": actor.email, "name": locked.name, "severity": "high"}
        record(
            "sso.connection_staff_disable",
            tenant=locked.tenant,
            actor=_audit_actor(actor),
            target=locked,
            metadata={"before": {"status": SSOConnection.Status.ENABLED}, "after": {"status": locked.status}, **detail},
        )
        notice_enqueue(connection_id=locked.pk, event=STAFF_DISABLED, detail=detail)
    return locked


def connection_delete(*, connection: SSOConnection, actor: User | None) -> None:
    """Delete a connection that is not enabled, with the identities linked through it; audited.

    Members keep their accounts and memberships. Raises SSOInputError for an
    enabled connection (disable it first).
    """
    with transaction.atomic():
        locked = _lock_connection(connection)
        if locked.status == SSOConnection.Status.ENABLED:
            raise SSOInputError("Disable the connection before deleting it.")
        identities = ExternalIdentity.objects.filter(connection=locked).count()
        record(
            "sso.connection_delete",
            tenant=locked.tenant,
            actor=_audit_actor(actor),
            target=locked,
            metadata={"before": selectors.connection_snapshot(locked), "after": None, "identities": identities},
        )
        locked.delete()


def connection_request_metadata_refresh(*, connection: SSOConnection, actor: User | None) -> None:
    """Ask the worker to download a URL-configured SAML connection's metadata again now; audited.

    Raises SSOInputError if the connection has no metadata URL.
    """
    if connection.kind != SSOConnection.Kind.SAML or not (connection.config or {}).get("metadata_url"):
        raise SSOInputError("This connection is not configured from a metadata URL.")
    with transaction.atomic():
        record("sso.metadata_refresh_request", tenant=connection.tenant, actor=_audit_actor(actor), target=connection)
        _after_commit_refresh(connection)


def client_secret(connection: SSOConnection) -> str:
    """The decrypted OIDC client secret, for the protocol call only. Raises SSOConfigError if unreadable."""
    return crypto.decrypt(connection.secret_encrypted)
