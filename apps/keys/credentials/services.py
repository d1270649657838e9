"""Writes of provider credentials: create, edit, delete, check, rotate, record a rotation, tenant settings.

Keyword-only, audited (``credential.*`` on the tenant's chain). The caller
checked ``key.manage``. Nothing here stores, logs or audits a secret value:
the database holds the reference, its metadata and the rotation dates.

Network calls to the vault (check, rotate) run outside any database
transaction, so a slow vault never holds a row lock; their result is then
written in one short transaction. If that write fails after the vault took a
new version, the vault is still right and the next check shows the new version.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record
from apps.keys.credentials import secretstores
from apps.keys.credentials.secretstores import CheckResult
from apps.keys.models import Credential, CredentialRotation, CredentialSettings
from apps.tenants.models import Membership, Tenant

MAX_INTERVAL_DAYS = 3650
GENERATED_BYTES = 32  # a generated secret: 256 random bits, URL-safe


class CredentialError(ValueError):
    """A change the credential rules refuse; the message is meant for the user (never holds a secret)."""


@dataclass(frozen=True, slots=True)
class CredentialInput:
    """The editable fields of a credential, as a form cleans them."""

    name: str
    provider: str
    environment: str
    purpose: str
    owner: Membership | None
    reference: str
    rotation_interval_days: int = 90


def _actor(actor: Membership | None) -> Actor:
    return Actor.for_user(actor.user) if actor is not None else Actor.from_context()


def next_due(*, base: datetime | date, interval_days: int) -> date:
    """The due date: the day of the last rotation (or creation) plus the interval."""
    day = base.date() if isinstance(base, datetime) else base
    return day + timedelta(days=interval_days)


def _validate(tenant: Tenant, data: CredentialInput) -> CredentialInput:
    name, provider = data.name.strip(), data.provider.strip().lower()
    if not name or len(name) > 80:
        raise CredentialError("Give the credential a name of 1 to 80 characters.")
    if not provider or len(provider) > 40:
        raise CredentialError("Name the provider (at most 40 characters), e.g. openai.")
    if data.environment not in Credential.Environment.values:
        raise CredentialError("Choose the environment: dev, staging or prod.")
    if not 1 <= data.rotation_interval_days <= MAX_INTERVAL_DAYS:
        raise CredentialError(f"The rotation interval is 1 to {MAX_INTERVAL_DAYS} days.")
    if data.owner is not None and (data.owner.tenant_id != tenant.pk or data.owner.status != Membership.Status.ACTIVE):
        raise CredentialError("The owner must be an active member of this organisation.")
    try:
        reference = secretstores.validate(data.reference, tenant=tenant)
    except secretstores.BadReferenceError as exc:
        raise CredentialError(str(exc)) from None
    return CredentialInput(
        name=name,
        provider=provider,
        environment=data.environment,
        purpose=data.purpose.strip()[:300],
        owner=data.owner,
        reference=reference,
        rotation_interval_days=data.rotation_interval_days,
    )


def _snapshot(credential: Credential) -> dict[str, Any]:
    return {
        "name": credential.name,
        "provider": credential.provider,
        "environment": credential.environment,
        "owner": credential.owner.user.email if credential.owner_id and credential.owner else None,
        "reference": credential.reference,
        "rotation_interval_days": credential.rotation_interval_days,
        "next_due_on": credential.next_due_on.isoformat(),
    }


@transaction.atomic
def credential_create(
    *,
    tenant: Tenant,
    data: CredentialInput,
    last_rotated_at: datetime | None = None,
    actor: Membership | None = None,
) -> Credential:
    """Add a credential reference; due ``interval`` days after its last rotation (or today).

    Raises CredentialError for bad input, a reference outside the tenant's
    space, or a name already used in the tenant.
    """
    clean = _validate(tenant, data)
    now = timezone.now()
    if last_rotated_at is not None and last_rotated_at > now + timedelta(minutes=5):
        raise CredentialError("The last rotation cannot be in the future.")
    if last_rotated_at is not None and last_rotated_at < now - timedelta(days=MAX_INTERVAL_DAYS):
        raise CredentialError("That date is too far in the past (at most ten years ago).")
    credential = Credential(
        tenant=tenant,
        name=clean.name,
        provider=clean.provider,
        environment=clean.environment,
        purpose=clean.purpose,
        owner=clean.owner,
        reference=clean.reference,
        rotation_interval_days=clean.rotation_interval_days,
        last_rotated_at=last_rotated_at,
        next_due_on=next_due(base=last_rotated_at or now, interval_days=clean.rotation_interval_days),
        created_by=actor.user if actor is not None else None,
    )
    try:
        with transaction.atomic():
            credential.save()
    except IntegrityError:
        raise CredentialError(f"A credential named “{clean.name}” already exists here.") from None
    record("credential.created", tenant=tenant, actor=_actor(actor), target=credential, metadata=_snapshot(credential))
    return credential


@transaction.atomic
def credential_update(*, credential: Credential, data: CredentialInput, actor: Membership | None = None) -> Credential:
    """Change a credential's description, owner, reference or interval (the due date follows the interval)."""
    locked = Credential.objects.for_tenant(credential.tenant_id).select_for_update().get(pk=credential.pk)
    tenant = credential.tenant
    clean = _validate(tenant, data)
    before = _snapshot(locked)
    locked.name, locked.provider, locked.environment = clean.name, clean.provider, clean.environment
    locked.purpose, locked.owner, locked.reference = clean.purpose, clean.owner, clean.reference
    locked.rotation_interval_days = clean.rotation_interval_days
    locked.next_due_on = next_due(
        base=locked.last_rotated_at or locked.created_at, interval_days=clean.rotation_interval_days
    )
    if before["reference"] != clean.reference:
        # The last check described the old reference.
        locked.last_check_status, locked.last_check_detail = Credential.CheckStatus.NEVER, ""
        locked.last_check_at = locked.last_check_version = locked.last_check_created_time = None
    locked.updated_at = timezone.now()
    try:
        with transaction.atomic():
            locked.save()
    except IntegrityError:
        raise CredentialError(f"A credential named “{clean.name}” already exists here.") from None
    after = _snapshot(locked)
    changed = {key: {"before": before[key], "after": after[key]} for key in after if before[key] != after[key]}
    record("credential.updated", tenant=tenant, actor=_actor(actor), target=locked, metadata={"changed": changed})
    return locked


@transaction.atomic
def credential_delete(*, credential: Credential, actor: Membership | None = None) -> None:
    """Forget a reference (the secret in the vault is not touched)."""
    snapshot = _snapshot(credential)
    pk = credential.pk
    Credential.objects.for_tenant(credential.tenant_id).filter(pk=pk).delete()
    record(
        "credential.deleted",
        tenant=credential.tenant_id,
        actor=_actor(actor),
        target_type="credential",
        target_id=pk,
        metadata=snapshot,
    )


def credential_check(*, credential: Credential, actor: Membership | None = None) -> CheckResult:
    """Resolve the reference server-side and keep the outcome (status and metadata, never the value); audited."""
    result = secretstores.check(credential.reference, tenant=credential.tenant)
    with transaction.atomic():
        Credential.objects.for_tenant(credential.tenant_id).filter(pk=credential.pk).update(
            last_check_at=timezone.now(),
            last_check_status=result.status,
            last_check_detail=result.detail[:300],
            last_check_version=result.version,
            last_check_created_time=result.created_time,
        )
        record(
            "credential.checked",
            tenant=credential.tenant_id,
            actor=_actor(actor),
            target=credential,
            result=AuditEvent.Result.SUCCESS if result.ok else AuditEvent.Result.FAILURE,
            metadata={"status": result.status, "version": result.version, "reference": credential.reference},
        )
    return result


def may_write(credential: Credential) -> tuple[bool, str]:
    """Whether "Rotate now" may write to the vault for this credential, and if not, why (for the page)."""
    if not secretstores.is_writable(credential.reference):
        return False, "This reference is read-only: rotate the secret where it lives, then record the rotation."
    if not CredentialSettings.objects.for_tenant(credential.tenant_id).filter(allow_vault_writes=True).exists():
        return False, "This organisation does not let Bastion write to the vault (see the credential settings)."
    return True, ""


def credential_rotate(
    *, credential: Credential, actor: Membership | None = None, new_value: str | None = None
) -> CheckResult:
    """Write a new version of the secret to the vault and record the rotation; audited either way.

    ``new_value`` None: Bastion generates one (256 random bits), writes it and
    forgets it. The value is never returned, stored, logged or audited; the
    audit event names the new version. Raises CredentialError when the
    reference is read-only or the tenant does not allow vault writes.
    """
    allowed, why = may_write(credential)
    if not allowed:
        raise CredentialError(why)
    if new_value is not None and not 16 <= len(new_value) <= 4096:
        raise CredentialError("A new secret value is 16 to 4096 characters long.")
    value = new_value if new_value is not None else secrets.token_urlsafe(GENERATED_BYTES)
    result = secretstores.write(credential.reference, tenant=credential.tenant, value=value)
    del value, new_value
    with transaction.atomic():
        if result.ok:
            _rotated(
                credential,
                method=CredentialRotation.Method.VAULT_WRITE,
                at=timezone.now(),
                actor=actor,
                note="",
                version=result.version,
                check=result,
            )
        else:
            record(
                "credential.rotated",
                tenant=credential.tenant_id,
                actor=_actor(actor),
                target=credential,
                result=AuditEvent.Result.FAILURE,
                metadata={"method": "vault_write", "status": result.status, "reference": credential.reference},
            )
    return result


@transaction.atomic
def credential_rotation_record(
    *, credential: Credential, rotated_at: datetime, note: str = "", actor: Membership | None = None
) -> CredentialRotation:
    """Record a rotation done outside Bastion (who says so, when it happened); the next due date follows."""
    now = timezone.now()
    if rotated_at > now + timedelta(minutes=5):
        raise CredentialError("The rotation cannot be in the future.")
    if rotated_at < now - timedelta(days=MAX_INTERVAL_DAYS):
        raise CredentialError("That date is too far in the past.")
    return _rotated(
        credential,
        method=CredentialRotation.Method.RECORDED,
        at=rotated_at,
        actor=actor,
        note=note.strip()[:300],
        version=None,
    )


def _rotated(
    credential: Credential,
    *,
    method: str,
    at: datetime,
    actor: Membership | None,
    note: str,
    version: int | None,
    check: CheckResult | None = None,
) -> CredentialRotation:
    locked = Credential.objects.for_tenant(credential.tenant_id).select_for_update().filter(pk=credential.pk).first()
    if locked is None:  # removed from Bastion while the rotation was under way
        detail = f" The vault keeps the new version {version}." if version is not None else ""
        raise CredentialError("This credential was removed from Bastion meanwhile; nothing was recorded." + detail)
    rotation = CredentialRotation.objects.create(
        tenant_id=locked.tenant_id,
        credential=locked,
        method=method,
        rotated_at=at,
        rotated_by=actor.user if actor is not None else None,
        note=note,
        new_version=version,
    )
    # An older rotation recorded late does not move the schedule back.
    if locked.last_rotated_at is None or at > locked.last_rotated_at:
        locked.last_rotated_at = at
        locked.next_due_on = next_due(base=at, interval_days=locked.rotation_interval_days)
    fields = ["last_rotated_at", "next_due_on", "updated_at"]
    if check is not None:
        locked.last_check_at, locked.last_check_status, locked.last_check_detail = timezone.now(), check.status, ""
        locked.last_check_version, locked.last_check_created_time = check.version, check.created_time
        fields += ["last_check_at", "last_check_status", "last_check_detail", "last_check_version"]
        fields += ["last_check_created_time"]
    locked.updated_at = timezone.now()
    locked.save(update_fields=fields)
    record(
        "credential.rotated" if method == CredentialRotation.Method.VAULT_WRITE else "credential.rotation_recorded",
        tenant=locked.tenant_id,
        actor=_actor(actor),
        target=locked,
        metadata={
            "method": method,
            "rotated_at": at.isoformat(),
            "new_version": version,
            "note": note,
            "next_due_on": locked.next_due_on.isoformat(),
        },
    )
    return rotation


@transaction.atomic
def credential_settings_set(
    *, tenant: Tenant, allow_vault_writes: bool, actor: Membership | None = None
) -> CredentialSettings:
    """Let Bastion write new secret versions to the vault for this tenant, or not; audited with before/after."""
    current = CredentialSettings.objects.for_tenant(tenant).select_for_update().first()
    before = current.allow_vault_writes if current is not None else False
    row, _ = CredentialSettings.objects.update_or_create(
        tenant=tenant, defaults={"allow_vault_writes": allow_vault_writes, "updated_at": timezone.now()}
    )
    record(
        "credential.settings_changed",
        tenant=tenant,
        actor=_actor(actor),
        target_type="credential_settings",
        target_id=tenant.pk,
        metadata={"allow_vault_writes": {"before": before, "after": allow_vault_writes}},
    )
    return row
