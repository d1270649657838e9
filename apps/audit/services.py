"""Audit writes.

``record()`` is the only way an event enters the log, ``retention_purge()`` the
only way one leaves it, and ``seal_chains()`` snapshots chain heads so that a
truncated tail is detectable (see apps.audit.verification).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone

from apps.audit import chain as audit_chain
from apps.audit.models import PLATFORM_CHAIN, AuditEvent, AuditRetentionCut, AuditSeal
from apps.audit.redaction import mask_mapping, mask_text
from apps.core import context
from apps.tenants.models import Tenant

logger = logging.getLogger(__name__)

MAX_METADATA_BYTES = 16 * 1024
_RESULTS = frozenset(AuditEvent.Result.values)

# One statement appends to a chain: the upsert on the chain head takes the row
# lock of *this* chain only (so tenants never serialise on each other), moves
# the head, and the outer INSERT stores the event with the returned links.
_APPEND_SQL = """
WITH head AS (
    INSERT INTO audit_auditchainhead AS h (chain, seq, prev_hash, head_hash, updated_at)
    VALUES (%(chain)s, 1, %(genesis)s,
            sha256(%(opad)s || sha256(%(ipad)s || %(genesis)s || %(payload)s)), now())
    ON CONFLICT (chain) DO UPDATE SET
        seq = h.seq + 1,
        prev_hash = h.head_hash,
        head_hash = sha256(%(opad)s || sha256(%(ipad)s || h.head_hash || %(payload)s)),
        updated_at = now()
    RETURNING seq, prev_hash, head_hash
)
INSERT INTO audit_auditevent (
    chain, seq, occurred_at, tenant_id, actor_type, actor_id, actor_display, action,
    target_type, target_id, result, ip, user_agent, request_id, metadata, prev_hash, hash
)
SELECT %(chain)s, head.seq, %(occurred_at)s, %(tenant_id)s, %(actor_type)s, %(actor_id)s,
       %(actor_display)s, %(action)s, %(target_type)s, %(target_id)s, %(result)s, %(ip)s,
       %(user_agent)s, %(request_id)s, %(metadata)s::jsonb, head.prev_hash, head.head_hash
FROM head
RETURNING id
"""


@dataclass(frozen=True, slots=True)
class Actor:
    """Who did it: a user, an API client, the system, or an anonymous caller."""

    type: str
    id: str = ""
    display: str = ""

    @classmethod
    def for_user(cls, user: Any) -> Actor:
        return cls(AuditEvent.ActorType.USER, str(user.pk), getattr(user, "email", "") or str(user))

    @classmethod
    def system(cls, display: str = "system") -> Actor:
        return cls(AuditEvent.ActorType.SYSTEM, "", display)

    @classmethod
    def anonymous(cls, display: str = "") -> Actor:
        return cls(AuditEvent.ActorType.ANONYMOUS, "", display)

    @classmethod
    def from_context(cls) -> Actor:
        ctx = context.current()
        if ctx.user_id is not None:
            return cls(AuditEvent.ActorType.USER, str(ctx.user_id), ctx.user_display)
        return cls.system()


def _target_of(target: Model | None, target_type: str | None, target_id: Any) -> tuple[str, str]:
    if target is not None:
        return target_type or target._meta.model_name or "", str(target.pk)
    return target_type or "", "" if target_id is None else str(target_id)


def _text(value: str, limit: int) -> str:
    # PostgreSQL text refuses NUL; strip it before hashing so the stored row and
    # the hashed payload stay identical.
    return value.replace("\x00", "")[:limit]


def _metadata_json(metadata: dict[str, Any] | None) -> tuple[Any, str]:
    clean = audit_chain.normalize_json(mask_mapping(metadata))
    text = json.dumps(clean, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_METADATA_BYTES:
        clean = {"truncated": True, "original_bytes": len(text.encode())}
        text = json.dumps(clean, sort_keys=True, separators=(",", ":"))
    return clean, text


def record(
    action: str,
    *,
    tenant: Tenant | int | None = None,
    actor: Actor | None = None,
    target: Model | None = None,
    target_type: str | None = None,
    target_id: Any = None,
    result: str = AuditEvent.Result.SUCCESS,
    metadata: dict[str, Any] | None = None,
) -> int:
    """Append one event to the tenant's chain (the platform chain if no tenant).

    Runs in the caller's transaction: if the caller rolls back, the event is
    gone too, so the log never claims a change that did not happen. IP, user
    agent and request id come from the current request context. Secrets in
    ``metadata`` and the user agent are masked before anything is stored.
    Returns the new event's id. Raises ValueError on an unknown result.
    """
    if result not in _RESULTS:
        raise ValueError(f"unknown audit result {result!r}")
    ctx = context.current()
    actor = actor or Actor.from_context()
    tenant_id = tenant if isinstance(tenant, int) or tenant is None else tenant.pk
    chain_id = tenant_id if tenant_id is not None else PLATFORM_CHAIN
    kind, ident = _target_of(target, target_type, target_id)
    clean_metadata, metadata_text = _metadata_json(metadata)
    values: dict[str, Any] = {
        "chain": chain_id,
        "occurred_at": timezone.now(),
        "tenant_id": tenant_id,
        "actor_type": str(actor.type),
        "actor_id": _text(str(actor.id), 64),
        "actor_display": _text(mask_text(actor.display), 254),
        "action": _text(action, 100),
        "target_type": _text(kind, 64),
        "target_id": _text(ident, 64),
        "result": str(result),
        "ip": audit_chain.normalize_ip(ctx.ip),
        "user_agent": _text(mask_text(ctx.user_agent), 512),
        "request_id": _text(ctx.request_id, 64),
    }
    payload = audit_chain.payload(**values, metadata=clean_metadata)
    ipad, opad = audit_chain.hmac_pads()
    with connection.cursor() as cursor:
        cursor.execute(
            _APPEND_SQL,
            {
                **values,
                "metadata": metadata_text,
                "payload": payload,
                "genesis": audit_chain.GENESIS,
                "ipad": ipad,
                "opad": opad,
            },
        )
        (event_id,) = cursor.fetchone()
    return event_id


def record_export(*, tenant: Tenant | None, fmt: str, filters: dict[str, Any]) -> int:
    """Record that the audit log was exported (who, which format, which filters).

    ``tenant`` None means a platform-wide export, recorded on the platform chain.
    """
    return record(
        "audit.export",
        tenant=tenant,
        target_type="audit_log",
        target_id=tenant.pk if tenant is not None else "platform",
        metadata={"format": fmt, "filters": filters},
    )


# --- retention -------------------------------------------------------------


class RetentionError(ValueError):
    """The retention purge refused to run; the message says why."""


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """What one retention purge did to one chain."""

    chain: int
    deleted: int
    up_to_seq: int
    anchor_hash: bytes | None
    event_id: int


_RETENTION_ON = "SET LOCAL bastion.audit_retention = 'on'"
_RETENTION_OFF = "SET LOCAL bastion.audit_retention = 'off'"


def retention_purge(*, chain: int, older_than: datetime, by: Actor | Any) -> PurgeResult:
    """Delete the events of ``chain`` older than ``older_than``: the one privileged retention path.

    In one transaction: lock the chain head (appends to this chain wait, other
    chains do not), find the longest prefix of the chain (by seq) whose events
    all occurred before ``older_than``, delete it with the append-only trigger's
    retention flag set, move the chain's AuditRetentionCut to the last deleted
    seq with its hash as the new anchor, and record ``audit.retention_purge`` on
    the same chain (its metadata attests the cut, which verification checks).
    The flag is switched off again before returning, so the rest of a caller's
    transaction cannot delete audit rows. ``by`` is an Actor or a user.

    Raises ValueError for a naive or future ``older_than``; RetentionError if the
    event at the cut is missing (a damaged chain must be investigated first).
    """
    if timezone.is_naive(older_than):
        raise ValueError("older_than must be timezone-aware")
    if older_than > timezone.now():
        raise ValueError("older_than must not be in the future")
    actor = by if isinstance(by, Actor) else Actor.for_user(by)
    tenant_id = None if chain == PLATFORM_CHAIN else chain
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT seq FROM audit_auditchainhead WHERE chain = %s FOR UPDATE", [chain])
        head = cursor.fetchone()
        cut = AuditRetentionCut.objects.select_for_update().filter(chain=chain).first()
        start = cut.up_to_seq if cut is not None else 0
        anchor = bytes(cut.anchor_hash) if cut is not None else None
        deleted = 0
        up_to = start
        if head is not None:
            # Walks the (chain, seq) index from the old end; stops at the first
            # event young enough to keep, so it reads about as many rows as it deletes.
            cursor.execute(
                "SELECT seq FROM audit_auditevent WHERE chain = %s AND seq > %s AND occurred_at >= %s "
                "ORDER BY seq LIMIT 1",
                [chain, start, older_than],
            )
            keep = cursor.fetchone()
            up_to = keep[0] - 1 if keep is not None else head[0]
        if up_to > start:
            cursor.execute("SELECT hash FROM audit_auditevent WHERE chain = %s AND seq = %s", [chain, up_to])
            row = cursor.fetchone()
            if row is None:
                raise RetentionError(f"event seq {up_to} of chain {chain} is missing; run audit_verify before purging")
            anchor = bytes(row[0])
            cursor.execute(_RETENTION_ON)
            try:
                cursor.execute(
                    "DELETE FROM audit_auditevent WHERE chain = %s AND seq > %s AND seq <= %s", [chain, start, up_to]
                )
                deleted = cursor.rowcount
            finally:
                cursor.execute(_RETENTION_OFF)
            AuditRetentionCut.objects.update_or_create(
                chain=chain, defaults={"up_to_seq": up_to, "anchor_hash": anchor}
            )
        event_id = record(
            "audit.retention_purge",
            tenant=tenant_id,
            actor=actor,
            target_type="audit_chain",
            target_id=chain,
            metadata={
                "older_than": audit_chain.iso(older_than),
                "deleted": deleted,
                "from_seq": start + 1,
                "up_to_seq": up_to,
                "anchor_hash": anchor.hex() if anchor is not None else None,
            },
        )
    logger.info("audit retention purge", extra={"chain": chain, "deleted": deleted, "up_to_seq": up_to})
    return PurgeResult(chain=chain, deleted=deleted, up_to_seq=up_to, anchor_hash=anchor, event_id=event_id)


# --- seals -----------------------------------------------------------------

# Any constant works; it only has to differ from other advisory locks in the database.
_SEAL_LOCK_KEY = 0x6175646974_5E41  # "audit" + "^A"

_HEADS_TO_SEAL_SQL = """
SELECT h.chain, h.seq, h.head_hash, s.seq
FROM audit_auditchainhead h
LEFT JOIN LATERAL (
    SELECT seq, head_hash FROM audit_auditseal WHERE chain = h.chain ORDER BY seq DESC, id DESC LIMIT 1
) s ON true
WHERE s.seq IS NULL OR s.seq <> h.seq OR s.head_hash <> h.head_hash
ORDER BY h.chain
"""


def seal_chains() -> list[AuditSeal]:
    """Write an AuditSeal for every chain whose head moved since its last seal.

    A seal records (chain, seq, head hash) with a MAC under the audit key, so
    deleting the newest events and rolling the head row back is caught by
    verification. A head that is *behind* (or disagrees with) its latest seal
    is never sealed again: that would bless a truncated chain; it is logged as
    an error instead. Concurrent runs are serialised by an advisory lock; a run
    that cannot take it returns an empty list. Returns the seals written.
    """
    seals: list[AuditSeal] = []
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_SEAL_LOCK_KEY])
        if not cursor.fetchone()[0]:
            return []
        cursor.execute(_HEADS_TO_SEAL_SQL)
        for chain_id, seq, head_hash, sealed_seq in cursor.fetchall():
            head_hash = bytes(head_hash)
            if sealed_seq is not None and seq <= sealed_seq:
                logger.error(
                    "audit chain head is behind or disagrees with its seal; not sealing",
                    extra={"chain": chain_id, "head_seq": seq, "sealed_seq": sealed_seq},
                )
                continue
            mac = audit_chain.seal_mac(chain_id, seq, head_hash)
            seals.append(AuditSeal(chain=chain_id, seq=seq, head_hash=head_hash, mac=mac))
        AuditSeal.objects.bulk_create(seals)
    return seals
