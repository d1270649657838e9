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

from django.db import DataError, connection, transaction
from django.db.models import Model
from django.utils import timezone

from apps.audit import chain as audit_chain
from apps.audit.models import PLATFORM_CHAIN, AuditEvent, AuditSeal
from apps.audit.redaction import mask_mapping, mask_text
from apps.core import context
from apps.tenants.models import Tenant

logger = logging.getLogger(__name__)

MAX_METADATA_BYTES = 16 * 1024
_RESULTS = frozenset(AuditEvent.Result.values)

# Appending computes the link in Python from the chain head, so statements carry
# only the resulting hash, never the key or anything derived from it. The
# insert's trigger (migration 0005) moves the head to the new event in the same
# statement; the head cannot be moved any other way.
#
# Two ways to append, both correct under concurrency:
#
# - Optimistic, one statement (``_APPEND_IF_HEAD_SQL``): the process remembers
#   each chain's last head it saw (``_heads``), computes the link from it, and
#   sends one statement that locks the head row FOR UPDATE only if it still is
#   (seq, hash), then inserts the event. Under READ COMMITTED a row locked by
#   another writer is re-checked after that writer finishes, so a head that
#   moved meanwhile no longer matches: nothing is inserted and the statement
#   returns the head it sees instead. The cache is only a guess; the condition
#   in the statement is what is trusted, so a rolled-back caller or another
#   process leaves at worst a wasted round trip. In autocommit this is one
#   round trip instead of four (BEGIN, lock, insert, COMMIT).
# - Locked (``_LOCK_HEAD_SQL`` then ``_INSERT_EVENT_SQL``): lock the head row of
#   *this* chain, compute, insert. Used for a chain's first event, and when the
#   optimistic attempts keep missing (many writers on one chain).
#
# Either way only the head row of the event's own chain is locked, so tenants
# never wait on each other.
_LOCK_HEAD_SQL = "SELECT seq, head_hash FROM audit_auditchainhead WHERE chain = %s FOR UPDATE"
_READ_HEAD_SQL = "SELECT seq, head_hash FROM audit_auditchainhead WHERE chain = %s"
# A chain's first writer creates its empty head (seq 0, genesis); concurrent
# first writers wait on the primary key and then find the row.
_CREATE_HEAD_SQL = (
    "INSERT INTO audit_auditchainhead (chain, seq, prev_hash, head_hash, updated_at) "
    "VALUES (%s, 0, %s, %s, now()) ON CONFLICT (chain) DO NOTHING"
)
_EVENT_COLUMNS = """
    chain, seq, occurred_at, tenant_id, actor_type, actor_id, actor_display, action,
    target_type, target_id, result, ip, user_agent, request_id, metadata, prev_hash, hash
"""
_INSERT_EVENT_SQL = f"""
INSERT INTO audit_auditevent ({_EVENT_COLUMNS}) VALUES (
    %(chain)s, %(seq)s, %(occurred_at)s, %(tenant_id)s, %(actor_type)s, %(actor_id)s,
    %(actor_display)s, %(action)s, %(target_type)s, %(target_id)s, %(result)s, %(ip)s,
    %(user_agent)s, %(request_id)s, %(metadata)s::jsonb, %(prev_hash)s, %(hash)s
)
RETURNING id
"""
# Explicit casts: in INSERT … SELECT an untyped literal (or NULL) would be text.
# The outer SELECT reads the head as of the statement's snapshot; it is only
# used when nothing was inserted, as the next guess.
_APPEND_IF_HEAD_SQL = f"""
WITH expected AS (
    SELECT chain FROM audit_auditchainhead
    WHERE chain = %(chain)s AND seq = %(prev_seq)s AND head_hash = %(prev_hash)s
    FOR UPDATE
), appended AS (
    INSERT INTO audit_auditevent ({_EVENT_COLUMNS})
    SELECT %(chain)s::bigint, %(seq)s::bigint, %(occurred_at)s::timestamptz, %(tenant_id)s::bigint,
           %(actor_type)s::varchar, %(actor_id)s::varchar, %(actor_display)s::varchar, %(action)s::varchar,
           %(target_type)s::varchar, %(target_id)s::varchar, %(result)s::varchar, %(ip)s::inet,
           %(user_agent)s::varchar, %(request_id)s::varchar, %(metadata)s::jsonb,
           %(prev_hash)s::bytea, %(hash)s::bytea
    FROM expected
    RETURNING id
)
SELECT (SELECT id FROM appended), h.seq, h.head_hash FROM audit_auditchainhead h WHERE h.chain = %(chain)s
"""
# Optimistic statements per record() before falling back to the lock: the first
# with the cached head, a second with the head the first one returned.
_OPTIMISTIC_ATTEMPTS = 2
# The last head this process saw per (database alias, chain). A guess only (see
# above). Cleared when it grows past the bound, so memory stays flat whatever
# the number of tenants.
_heads: dict[tuple[str, int], tuple[int, bytes]] = {}
_MAX_CACHED_HEADS = 10_000


def _remember_head(key: tuple[str, int], seq: int, head_hash: bytes) -> None:
    if len(_heads) >= _MAX_CACHED_HEADS:
        _heads.clear()
    _heads[key] = (seq, head_hash)


def _lock_head(cursor: Any, chain_id: int) -> tuple[int, bytes]:
    """Lock the chain head row (creating an empty one first if needed); returns (seq, head hash)."""
    cursor.execute(_LOCK_HEAD_SQL, [chain_id])
    row = cursor.fetchone()
    if row is None:
        cursor.execute(_CREATE_HEAD_SQL, [chain_id, audit_chain.GENESIS, audit_chain.GENESIS])
        cursor.execute(_LOCK_HEAD_SQL, [chain_id])
        row = cursor.fetchone()
    return row[0], bytes(row[1])


def _append(values: dict[str, Any], payload: bytes, metadata_text: str) -> int:
    """Insert one event at the end of its chain; returns its id (see the comment above for the two paths)."""
    chain_id = values["chain"]
    key = (connection.alias, chain_id)
    expected = _heads.get(key)
    with connection.cursor() as cursor:
        if expected is None:
            # Unknown to this process: read the head (no lock) as the first guess.
            cursor.execute(_READ_HEAD_SQL, [chain_id])
            row = cursor.fetchone()
            expected = (row[0], bytes(row[1])) if row is not None else None
        for _ in range(_OPTIMISTIC_ATTEMPTS):
            if expected is None:
                break  # no head row yet: the locked path creates it
            prev_seq, prev = expected
            link = audit_chain.link(prev, payload)
            cursor.execute(
                _APPEND_IF_HEAD_SQL,
                {
                    **values,
                    "seq": prev_seq + 1,
                    "prev_seq": prev_seq,
                    "metadata": metadata_text,
                    "prev_hash": prev,
                    "hash": link,
                },
            )
            row = cursor.fetchone()
            if row is not None and row[0] is not None:
                _remember_head(key, prev_seq + 1, link)
                return row[0]
            seen = (row[1], bytes(row[2])) if row is not None else None
            if seen == expected:
                # The head moved after this statement's snapshot was taken (we
                # waited on its lock): the returned head is no better a guess.
                break
            expected = seen
    # savepoint=False: inside a caller's transaction this costs no extra round
    # trip, and an error still rolls the caller back (the event goes with it).
    with transaction.atomic(savepoint=False), connection.cursor() as cursor:
        prev_seq, prev = _lock_head(cursor, chain_id)
        link = audit_chain.link(prev, payload)
        cursor.execute(
            _INSERT_EVENT_SQL,
            {**values, "seq": prev_seq + 1, "metadata": metadata_text, "prev_hash": prev, "hash": link},
        )
        (event_id,) = cursor.fetchone()
    _remember_head(key, prev_seq + 1, link)
    return event_id


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


def _metadata_json(metadata: dict[str, Any] | None, *, mask: bool = True) -> tuple[Any, str]:
    clean = audit_chain.normalize_json(mask_mapping(metadata) if mask else dict(metadata or {}))
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
    return _record(
        action,
        tenant=tenant,
        actor=actor,
        target=target,
        target_type=target_type,
        target_id=target_id,
        result=result,
        metadata=metadata,
        mask_metadata=True,
    )


def _record(
    action: str,
    *,
    tenant: Tenant | int | None = None,
    actor: Actor | None = None,
    target: Model | None = None,
    target_type: str | None = None,
    target_id: Any = None,
    result: str = AuditEvent.Result.SUCCESS,
    metadata: dict[str, Any] | None,
    mask_metadata: bool,
) -> int:
    """record(), with a switch for metadata masking.

    ``mask_metadata=False`` is only for metadata a service computed itself from
    values that cannot hold a secret (numbers, hashes, timestamps): masking
    could rewrite them (a run of hash digits that passes the Luhn check looks
    like a card number), and verification compares them exactly.
    """
    if result not in _RESULTS:
        raise ValueError(f"unknown audit result {result!r}")
    ctx = context.current()
    actor = actor or Actor.from_context()
    tenant_id = tenant if isinstance(tenant, int) or tenant is None else tenant.pk
    chain_id = tenant_id if tenant_id is not None else PLATFORM_CHAIN
    kind, ident = _target_of(target, target_type, target_id)
    clean_metadata, metadata_text = _metadata_json(metadata, mask=mask_metadata)
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
    return _append(values, payload, metadata_text)


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


_PURGE_SQL = "SELECT deleted, from_seq, up_to_seq, anchor_hash FROM bastion_audit_retention_purge(%s, %s)"


def retention_purge(*, chain: int, older_than: datetime, by: Actor | Any) -> PurgeResult:
    """Delete the events of ``chain`` older than ``older_than``: the one privileged retention path.

    In one transaction: the database function ``bastion_audit_retention_purge``
    (SECURITY DEFINER, migration 0005; the only code the triggers let delete
    events or move a cut) locks the chain head (appends to this chain wait,
    other chains do not), deletes the longest prefix of the chain (by seq)
    whose events all occurred before ``older_than`` and moves the chain's
    AuditRetentionCut to the last deleted seq with its hash as the new anchor.
    Then ``audit.retention_purge`` is recorded on the same chain (its metadata
    attests the cut, which verification checks). ``by`` is an Actor or a user.

    Raises ValueError for a naive or future ``older_than``; RetentionError if the
    event at the cut is missing (a damaged chain must be investigated first).
    """
    if timezone.is_naive(older_than):
        raise ValueError("older_than must be timezone-aware")
    if older_than > timezone.now():
        raise ValueError("older_than must not be in the future")
    actor = by if isinstance(by, Actor) else Actor.for_user(by)
    tenant_id = None if chain == PLATFORM_CHAIN else chain
    with transaction.atomic():
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(_PURGE_SQL, [chain, older_than])
                deleted, start_seq, up_to, anchor = cursor.fetchone()
        except DataError as exc:
            raise RetentionError(str(exc).splitlines()[0]) from exc
        anchor = bytes(anchor) if anchor is not None else None
        # Unmasked: verification compares these values exactly, and masking
        # would rewrite an anchor hash whose hex holds a Luhn-valid digit run.
        event_id = _record(
            "audit.retention_purge",
            tenant=tenant_id,
            actor=actor,
            target_type="audit_chain",
            target_id=chain,
            metadata={
                "older_than": audit_chain.iso(older_than),
                "deleted": deleted,
                "from_seq": start_seq,
                "up_to_seq": up_to,
                "anchor_hash": anchor.hex() if anchor is not None else None,
            },
            mask_metadata=False,
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
