"""The add page's draft connection: created on the first visit so Bastion's SP details never change (#9, item 1).

An admin registers Bastion's entity ID, ACS URL or redirect URI at their IdP
*before* typing the IdP's settings into Bastion. Those values derive from the
connection's ``public_id``, so the add page opens (or reuses) one empty draft
per tenant, protocol and admin: a reload, a second tab or coming back the next
day shows the same values, and the SP metadata file can be downloaded at once.
The partial unique index ``sso_connection_one_pending_draft`` caps it at one.
Drafts never configured, or configured but never successfully tested, are
deleted once nobody has touched them for ``ABANDONED_AFTER``.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import record
from apps.sso.models import SSOConnection
from apps.sso.services._common import SSOInputError, _audit_actor
from apps.tenants.models import Tenant

ABANDONED_AFTER = timedelta(days=7)


def connection_draft_open(*, tenant: Tenant | None, kind: str, actor: User) -> SSOConnection:
    """The admin's empty draft of ``kind`` in ``tenant``: reused if one exists, else created (not audited: it
    trusts nobody until saved and tested). Safe against two tabs opening at once. Raises SSOInputError."""
    if kind not in SSOConnection.Kind.values:
        raise SSOInputError("Choose SAML or OpenID Connect.", field="kind")
    tenant_id = tenant.pk if tenant is not None else None
    pending = SSOConnection.objects.for_tenant(tenant_id).filter(kind=kind, created_by=actor, setup_pending=True)
    existing = pending.first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            return SSOConnection.objects.create(
                tenant=tenant,
                kind=kind,
                name="",
                status=SSOConnection.Status.DRAFT,
                setup_pending=True,
                created_by=actor,
            )
    except IntegrityError:
        # Another tab created it between our read and insert: the unique index says there is one.
        return pending.get()


def connection_drafts_purge(*, now: object = None) -> int:
    """Delete drafts abandoned for ``ABANDONED_AFTER``: never saved, or saved but never successfully tested.

    A draft that ever passed a test, has linked identities, or was changed within the
    window stays. Idempotent (a second run finds nothing); one audit event per
    deleted configured draft, none for empty ones. Returns how many were deleted.
    """
    cutoff = (now or timezone.now()) - ABANDONED_AFTER  # type: ignore[operator]
    stale = SSOConnection.objects.filter(
        status=SSOConnection.Status.DRAFT,
        first_tested_at__isnull=True,
        updated_at__lt=cutoff,
        created_at__lt=cutoff,
        identities__isnull=True,
    )
    deleted = 0
    for connection_id in list(stale.values_list("pk", flat=True)[:1000]):
        with transaction.atomic():
            # Re-check under the lock: the admin may have saved or tested it meanwhile.
            row = stale.select_for_update(of=("self",), skip_locked=True).filter(pk=connection_id).first()
            if row is None:
                continue
            if not row.setup_pending:
                record(
                    "sso.connection_delete",
                    tenant=row.tenant,
                    actor=_audit_actor(None),
                    target=row,
                    metadata={"reason": "abandoned_draft", "name": row.name, "kind": row.kind},
                )
            row.delete()
            deleted += 1
    return deleted
