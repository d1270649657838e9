"""Retention: how long each tenant keeps each kind of record, and the daily purge that applies it.

Kinds, their default and their minimum (days):

- audit events: default and minimum ``AUDIT_RETENTION_FLOOR_DAYS`` (365), the
  platform floor; purged through ``apps.audit.services.retention_purge``;
- denied decisions (``access.DeniedDecision``): default
  ``RETENTION_DENIED_DEFAULT_DAYS``, minimum ``RETENTION_DENIED_MIN_DAYS`` (the
  drift review reads a quarter of them);
- usage detail (``billing.UsageEvent``, when installed; hourly rollups stay):
  default ``RETENTION_USAGE_DEFAULT_DAYS``, minimum 62 (two billing periods,
  rolled up and invoiced first);
- raw prompts and outputs: default ``RETENTION_PROMPT_DEFAULT_DAYS``, minimum 1,
  applied to the models named in ``RETENTION_PROMPT_MODELS``: none today, since
  Bastion stores no prompt or output text (guardrails screen, the API meters).

How a purge keeps locks short: rows go in batches of ``RETENTION_BATCH_SIZE``,
each its own transaction (``DELETE … WHERE id IN (SELECT id … LIMIT n FOR UPDATE
SKIP LOCKED)``, so a row someone holds is left for the next run). Audit events
leave only through the one privileged path, the SECURITY DEFINER function
``bastion_audit_retention_purge``: each batch is one call with ``older_than`` set
to the time of the first event the batch must keep, so the function deletes at
most a batch, moves the chain's retention cut and records the
``audit.retention_purge`` event that attests the cut, all in one transaction.
Verification then starts from the recorded anchor (``audit_verify`` stays clean,
even when a run stops between two batches); after a purge that deleted events the
run verifies the chain from that anchor itself. Each tenant's run ends with one
``retention.purge`` summary event (per kind: cutoff, rows deleted, batches; for
audit events also where verification started and whether the chain held).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.apps import apps as django_apps
from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from apps.access.models import DeniedDecision
from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record, retention_purge
from apps.audit.verification import verify_chain
from apps.runbook.models import RetentionPolicy
from apps.tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)

MAX_DAYS = 3650  # ten years: longer asks for an archive, not a live table
USAGE_MIN_DAYS = 62
PROMPT_MIN_DAYS = 1
KINDS = ("audit_days", "denied_days", "usage_days", "prompt_days")
_SYSTEM = Actor.system("retention")


class RetentionError(ValueError):
    """Retention settings refused; ``errors`` maps a field to what is wrong with it."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = errors


def minimums() -> dict[str, int]:
    """The shortest retention a tenant may choose, per kind."""
    return {
        "audit_days": settings.AUDIT_RETENTION_FLOOR_DAYS,
        "denied_days": settings.RETENTION_DENIED_MIN_DAYS,
        "usage_days": USAGE_MIN_DAYS,
        "prompt_days": PROMPT_MIN_DAYS,
    }


def defaults() -> dict[str, int]:
    return {
        "audit_days": settings.AUDIT_RETENTION_FLOOR_DAYS,
        "denied_days": settings.RETENTION_DENIED_DEFAULT_DAYS,
        "usage_days": settings.RETENTION_USAGE_DEFAULT_DAYS,
        "prompt_days": settings.RETENTION_PROMPT_DEFAULT_DAYS,
    }


@dataclass(frozen=True, slots=True)
class Effective:
    """The retention in force for a tenant: its choice, never below today's minimum."""

    audit_days: int
    denied_days: int
    usage_days: int
    prompt_days: int
    customised: bool
    updated_at: datetime | None = None
    updated_by: str = ""

    def as_dict(self) -> dict[str, int]:
        return {kind: getattr(self, kind) for kind in KINDS}


def policy_for(*, tenant: Tenant) -> Effective:
    """The tenant's retention (a raised floor lifts an older, shorter choice at once)."""
    row = RetentionPolicy.objects.for_tenant(tenant).select_related("updated_by__user").first()
    chosen = {kind: getattr(row, kind) for kind in KINDS} if row else defaults()
    floor = minimums()
    return Effective(
        **{kind: max(chosen[kind], floor[kind]) for kind in KINDS},
        customised=row is not None,
        updated_at=row.updated_at if row else None,
        updated_by=row.updated_by.user.email if row and row.updated_by_id and row.updated_by else "",
    )


def _validate(values: dict[str, Any]) -> dict[str, int]:
    floor = minimums()
    clean: dict[str, int] = {}
    errors: dict[str, str] = {}
    for kind in KINDS:
        value = values.get(kind)
        if isinstance(value, bool) or not isinstance(value, int):
            errors[kind] = "Enter a whole number of days."
        elif value < floor[kind]:
            errors[kind] = f"At least {floor[kind]} days: the platform does not allow a shorter retention."
        elif value > MAX_DAYS:
            errors[kind] = f"At most {MAX_DAYS} days."
        else:
            clean[kind] = value
    if errors:
        raise RetentionError(errors)
    return clean


def policy_update(*, tenant: Tenant, actor: Membership | None, **values: Any) -> RetentionPolicy:
    """Set the tenant's retention (every kind at once); audited as ``retention.update`` with before and after.

    Raises RetentionError naming each field below its minimum or above MAX_DAYS.
    """
    clean = _validate(values)
    with transaction.atomic():
        before = policy_for(tenant=tenant).as_dict()
        policy, _ = (
            RetentionPolicy.objects.for_tenant(tenant)
            .select_for_update()
            .update_or_create(tenant=tenant, defaults={**clean, "updated_by": actor, "updated_at": timezone.now()})
        )
        record(
            "retention.update",
            tenant=tenant,
            actor=Actor.for_user(actor.user) if actor is not None else _SYSTEM,
            target=policy,
            metadata={"before": before, "after": clean},
        )
    return policy


# --- purging ----------------------------------------------------------------------------------


def _first_event_time(chain: int, offset: int = 0) -> datetime | None:
    # The chain's remaining events in seq order (everything up to the cut is gone): the
    # (chain, seq) unique index answers with at most ``offset`` + 1 rows read.
    return (
        AuditEvent.objects.filter(chain=chain)
        .order_by("seq")
        .values_list("occurred_at", flat=True)[offset : offset + 1]
        .first()
    )


def purge_audit(*, chain: int, older_than: datetime, batch_size: int, max_batches: int = 100_000) -> tuple[int, int]:
    """Purge a chain's events older than ``older_than``, at most ``batch_size`` per transaction.

    Returns (events deleted, batches). Each batch is one ``retention_purge``
    call (see the module docstring), so the chain verifies after every batch.
    """
    deleted = batches = 0
    while batches < max_batches:
        first = _first_event_time(chain)
        if first is None or first >= older_than:
            break  # nothing old at the head of the chain (the purge only ever removes a prefix)
        boundary = _first_event_time(chain, batch_size)
        limit = older_than if boundary is None or boundary > older_than else boundary
        result = retention_purge(chain=chain, older_than=limit, by=_SYSTEM)
        if result.deleted == 0 and limit < older_than:
            # Events of the batch share the boundary's timestamp: one larger batch gets past them.
            result = retention_purge(chain=chain, older_than=older_than, by=_SYSTEM)
        deleted += result.deleted
        batches += 1
        if result.deleted == 0:
            break
    return deleted, batches


_DELETE_BATCH_SQL = """
DELETE FROM {table} WHERE {pk} IN (
    SELECT {pk} FROM {table} WHERE tenant_id = %s AND {time} < %s LIMIT %s FOR UPDATE SKIP LOCKED
)
"""


def purge_rows(
    model: type[models.Model], *, tenant: Tenant, time_field: str, older_than: datetime, batch_size: int
) -> tuple[int, int]:
    """Delete ``model`` rows of ``tenant`` older than ``older_than`` in batches; returns (rows, batches).

    Each batch is its own short transaction; rows locked by someone else are
    skipped (SKIP LOCKED) and go on a later run. A model with a tenant-leading
    index on ``time_field`` keeps each batch an index range scan.
    """
    meta = model._meta
    quote = connection.ops.quote_name
    statement = _DELETE_BATCH_SQL.format(
        table=quote(meta.db_table), pk=quote(meta.pk.column), time=quote(meta.get_field(time_field).column)
    )
    deleted = batches = 0
    while True:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(statement, [tenant.pk, older_than, batch_size])
            count = cursor.rowcount
        if count <= 0:
            break
        deleted += count
        batches += 1
        if count < batch_size:
            break
    return deleted, batches


def usage_model() -> type[models.Model] | None:
    """billing.UsageEvent when the metering part of billing is installed, else None."""
    try:
        return django_apps.get_model("billing", "UsageEvent")
    except LookupError:
        return None


def prompt_models() -> list[tuple[type[models.Model], str]]:
    """The models that hold raw prompt/output text, from ``RETENTION_PROMPT_MODELS`` ("app.Model:time_field")."""
    found = []
    for entry in getattr(settings, "RETENTION_PROMPT_MODELS", []):
        label, _, field = entry.partition(":")
        found.append((django_apps.get_model(label), field or "created_at"))
    return found


def purge_tenant(*, tenant: Tenant, now: datetime | None = None, batch_size: int | None = None) -> dict[str, Any]:
    """Apply the tenant's retention to every kind; records one ``retention.purge`` summary event.

    Returns the summary: per kind the cutoff, rows deleted and batches.
    """
    now = now or timezone.now()
    size = batch_size or settings.RETENTION_BATCH_SIZE
    policy = policy_for(tenant=tenant)
    summary: dict[str, Any] = {"policy": policy.as_dict(), "batch_size": size}

    def cutoff(days: int) -> datetime:
        return now - timedelta(days=days)

    audit_cut = cutoff(policy.audit_days)
    deleted, batches = purge_audit(chain=tenant.pk, older_than=audit_cut, batch_size=size)
    summary["audit"] = {"older_than": audit_cut.isoformat(), "deleted": deleted, "batches": batches}
    if deleted:
        # Verify from the new anchor (the recorded cut) right away: the evidence says the chain held.
        report = verify_chain(tenant.pk)
        summary["audit"]["verified_from_seq"] = report.start_seq
        summary["audit"]["chain_ok"] = report.ok
        if not report.ok:
            logger.error("audit chain does not verify after a retention purge", extra={"tenant": tenant.slug})

    denied_cut = cutoff(policy.denied_days)
    deleted, batches = purge_rows(
        DeniedDecision, tenant=tenant, time_field="occurred_at", older_than=denied_cut, batch_size=size
    )
    summary["denied"] = {"older_than": denied_cut.isoformat(), "deleted": deleted, "batches": batches}

    # By our receipt time, not the caller's ``occurred_at``: a caller must not be able to date an
    # event so that it is purged before it was rolled up and reported.
    usage = usage_model()
    if usage is None:
        summary["usage"] = {"skipped": "billing.UsageEvent is not installed"}
    else:
        usage_cut = cutoff(policy.usage_days)
        deleted, batches = purge_rows(
            usage, tenant=tenant, time_field="received_at", older_than=usage_cut, batch_size=size
        )
        summary["usage"] = {"older_than": usage_cut.isoformat(), "deleted": deleted, "batches": batches}

    stores = prompt_models()
    if not stores:
        summary["prompts"] = {"skipped": "no model stores raw prompts or outputs"}
    else:
        prompt_cut = cutoff(policy.prompt_days)
        total = total_batches = 0
        for model, field in stores:
            deleted, batches = purge_rows(
                model, tenant=tenant, time_field=field, older_than=prompt_cut, batch_size=size
            )
            total, total_batches = total + deleted, total_batches + batches
        summary["prompts"] = {"older_than": prompt_cut.isoformat(), "deleted": total, "batches": total_batches}

    record("retention.purge", tenant=tenant, actor=_SYSTEM, target=tenant, metadata=summary)
    return summary


def purge_all(*, now: datetime | None = None) -> dict[str, Any]:
    """Purge every tenant (suspended ones too: retention is a promise either way).

    One tenant's failure does not stop the rest.
    """
    done: dict[str, Any] = {}
    for tenant in Tenant.objects.order_by("pk"):
        try:
            done[tenant.slug] = purge_tenant(tenant=tenant, now=now)
        except Exception:  # the next tenant is still purged; the error is logged
            logger.exception("retention purge failed", extra={"tenant": tenant.slug})
            done[tenant.slug] = {"error": True}
    return done
