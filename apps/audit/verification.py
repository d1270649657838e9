"""Verify audit chains: recompute every link and report the first problem per chain.

The walk streams one chain in seq order (a server-side cursor, only the columns
the payload needs) and keeps two values: the hash the next event must link to
and the seq it must have. It starts at genesis, or at the AuditRetentionCut
anchor when old events were purged. Problems, in the order they are looked for:

- ``inserted``: a row that is not part of the chain: its link does not verify
  and the next row links to the previous valid hash; or its seq lies before the
  chain start or beyond the chain head.
- ``edited``: a row whose stored hash does not match its content while the
  next row still links to that stored hash (the content was changed in place).
- ``deleted``: a row whose own link verifies but whose ``prev_hash`` is not the
  previous row's hash, or whose seq skips: rows were removed before it. Also a
  retention cut that no ``audit.retention_purge`` event attests.
- ``truncated``: the walk ends before the chain head row or the latest seal.
- ``head_missing`` / ``head_mismatch``: the chain head row is gone, or names a
  hash that is not the last event's.
- ``seal_invalid`` / ``seal_mismatch``: the latest seal's MAC does not verify
  under the audit key, or the event at the sealed seq has another hash.
- ``emptied``: the chain has no events (and no head, seal or cut that would say
  where it ended), yet another chain shows it had some: the platform chain
  records every tenant's creation (``tenant.create`` targeting the tenant), and
  every tenant chain starts with its own ``tenant.create``, so an empty tenant
  chain whose creation the platform recorded, or an empty platform chain while
  tenant chains record their creation, was emptied. (The database refuses
  TRUNCATE and head deletion; only the tables' owner can get this far.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from apps.audit import chain as audit_chain
from apps.audit.models import EVENT_FIELDS, PLATFORM_CHAIN, AuditChainHead, AuditEvent, AuditRetentionCut, AuditSeal
from apps.audit.redaction import mask_text
from apps.tenants.models import Tenant

CHUNK_SIZE = 2000
PURGE_ACTION = "audit.retention_purge"

# Exactly what chain.payload_of() reads, plus the ids and links.
_COLUMNS = ("id", "seq", "chain", "occurred_at", "tenant_id", *EVENT_FIELDS, "prev_hash", "hash")


@dataclass(frozen=True, slots=True)
class Problem:
    """The first thing wrong with a chain: what, where, and in plain words."""

    kind: str
    seq: int | None
    event_id: int | None
    detail: str


@dataclass(slots=True)
class VerifyReport:
    """The outcome of verifying one chain; ``problem`` is None when it verified."""

    chain: int
    checked: int = 0
    start_seq: int = 1
    last_seq: int | None = None
    head_seq: int | None = None
    sealed_seq: int | None = None
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def verify_chain(chain_id: int, *, using: str = DEFAULT_DB_ALIAS) -> VerifyReport:
    """Verify one chain (a tenant id, or 0 for the platform chain).

    ``using`` names the database alias to read (the restore drill verifies a
    restored copy through an alias of its own).

    Reads everything from one REPEATABLE READ snapshot, so events appended
    while the walk runs are neither reported as beyond the head nor missed.
    (Inside an existing transaction the caller's snapshot rules apply.) Uses
    memory independent of the chain's length. Never raises for a damaged
    chain: the damage is the report's ``problem``.
    """
    if connections[using].in_atomic_block:
        return _verify(chain_id, using)
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        return _verify(chain_id, using)


def chains_to_verify(*, using: str = DEFAULT_DB_ALIAS) -> list[int]:
    """Every chain that exists or should: the platform chain, each tenant's, and any with a head, seal or cut."""
    ids = {PLATFORM_CHAIN}
    ids.update(Tenant.objects.using(using).values_list("pk", flat=True))
    ids.update(AuditChainHead.objects.using(using).values_list("chain", flat=True))
    ids.update(AuditSeal.objects.using(using).values_list("chain", flat=True).distinct())
    ids.update(AuditRetentionCut.objects.using(using).values_list("chain", flat=True))
    return sorted(ids)


def chain_names() -> dict[int, str]:
    """A display name per chain: "platform" for chain 0, else the tenant's slug."""
    return {PLATFORM_CHAIN: "platform", **dict(Tenant.objects.values_list("pk", "slug"))}


def _rows(chain_id: int, using: str) -> Iterator[Any]:
    # No lower seq bound on purpose: a row planted before the chain start must be seen.
    return (
        AuditEvent.objects.using(using)
        .filter(chain=chain_id)
        .order_by("seq")
        .values_list(*_COLUMNS, named=True)
        .iterator(chunk_size=CHUNK_SIZE)
    )


def _verify(chain_id: int, using: str = DEFAULT_DB_ALIAS) -> VerifyReport:
    head = AuditChainHead.objects.using(using).filter(chain=chain_id).values_list("seq", "head_hash").first()
    cut = AuditRetentionCut.objects.using(using).filter(chain=chain_id).values_list("up_to_seq", "anchor_hash").first()
    seal = (
        AuditSeal.objects.using(using)
        .filter(chain=chain_id)
        .order_by("-seq", "-id")
        .values_list("id", "seq", "head_hash", "mac")
        .first()
    )
    anchor_seq = cut[0] if cut else 0
    report = VerifyReport(
        chain=chain_id,
        start_seq=anchor_seq + 1,
        head_seq=head[0] if head else None,
        sealed_seq=seal[1] if seal else None,
    )
    expected_seq = anchor_seq + 1
    expected_prev = bytes(cut[1]) if cut else audit_chain.GENESIS
    last_id: int | None = None
    hash_at_seal: bytes | None = expected_prev if seal and seal[1] == anchor_seq else None
    cut_attested = cut is None

    rows = _rows(chain_id, using)
    for row in rows:
        stored = bytes(row.hash)
        prev = bytes(row.prev_hash)
        if row.seq < expected_seq:
            report.problem = Problem(
                "inserted", row.seq, row.id, f"seq {row.seq} lies before the expected seq {expected_seq}"
            )
            break
        if head is not None and row.seq > head[0]:
            report.problem = Problem(
                "inserted", row.seq, row.id, f"seq {row.seq} lies beyond the chain head (seq {head[0]})"
            )
            break
        link_ok = audit_chain.link(prev, audit_chain.payload_of(row)) == stored
        follows = prev == expected_prev and row.seq == expected_seq
        if link_ok and follows:
            report.checked += 1
            last_id, expected_prev, expected_seq = row.id, stored, row.seq + 1
            if seal and row.seq == seal[1]:
                hash_at_seal = stored
            if not cut_attested and row.action == PURGE_ACTION:
                cut_attested = _attests(row.metadata, cut)
            continue
        if link_ok:
            if row.seq - 1 > expected_seq:
                missing = f"seq {expected_seq}–{row.seq - 1} are"
            elif row.seq - 1 == expected_seq:
                missing = f"seq {expected_seq} is"
            else:
                missing = "an event is"
            report.problem = Problem(
                "deleted",
                row.seq,
                row.id,
                f"{missing} missing before this event: it verifies but does not link to the previous one",
            )
            break
        report.problem = _classify_bad_link(row, stored, expected_prev, next(rows, None), head)
        break
    rows.close()  # type: ignore[attr-defined]  # release the server-side cursor early on a problem

    last_seq = expected_seq - 1
    report.last_seq = last_seq if report.checked or cut else None
    if report.problem is None:
        report.problem = _check_tail(report, head, seal, last_seq, last_id, expected_prev, hash_at_seal)
    if report.problem is None and not report.checked and cut is None and seal is None and not (head and head[0]):
        report.problem = _check_emptied(chain_id, using)
    if report.problem is None and not cut_attested:
        report.problem = Problem(
            "deleted",
            anchor_seq,
            None,
            f"events up to seq {anchor_seq} were removed, but no audit.retention_purge event attests that cut",
        )
    return report


def _classify_bad_link(
    row: Any, stored: bytes, expected_prev: bytes, following: Any, head: tuple[int, bytes] | None
) -> Problem:
    """A row whose own link does not verify: changed in place, or planted?"""
    if following is not None and bytes(following.prev_hash) == expected_prev:
        return Problem(
            "inserted",
            row.seq,
            row.id,
            "this event does not verify and the next event links past it to the previous one",
        )
    if following is not None and bytes(following.prev_hash) == stored:
        detail = "stored hash does not match the event's content; the next event links to the stored hash"
    elif following is None and head is not None and bytes(head[1]) == stored:
        detail = "stored hash does not match the event's content; the chain head holds the stored hash"
    else:
        detail = "stored hash does not match the event's content"
    return Problem("edited", row.seq, row.id, detail)


def _check_tail(
    report: VerifyReport,
    head: tuple[int, bytes] | None,
    seal: tuple[int, int, bytes, bytes] | None,
    last_seq: int,
    last_id: int | None,
    last_hash: bytes,
    hash_at_seal: bytes | None,
) -> Problem | None:
    """After a clean walk: does the chain end where its head row and latest seal say?"""
    if head is None:
        if report.checked:
            return Problem("head_missing", last_seq, last_id, "events exist but the chain head row is missing")
    elif last_seq < head[0]:
        return Problem(
            "truncated",
            last_seq or None,
            last_id,
            f"events after seq {last_seq} are missing: the chain head is at seq {head[0]}",
        )
    elif bytes(head[1]) != last_hash:
        return Problem("head_mismatch", last_seq, last_id, "the chain head row does not hold the last event's hash")
    if seal is not None:
        seal_id, seal_seq, seal_hash, mac = seal
        if audit_chain.seal_mac(report.chain, seal_seq, bytes(seal_hash)) != bytes(mac):
            return Problem("seal_invalid", seal_seq, None, f"seal {seal_id} does not verify under the audit key")
        if last_seq < seal_seq:
            return Problem(
                "truncated",
                last_seq or None,
                last_id,
                f"events after seq {last_seq} are missing: seal {seal_id} covers up to seq {seal_seq}",
            )
        if hash_at_seal is not None and hash_at_seal != bytes(seal_hash):
            return Problem(
                "seal_mismatch",
                seal_seq,
                None,
                f"the event at seq {seal_seq} does not hold the hash sealed by seal {seal_id}",
            )
    return None


CREATE_ACTION = "tenant.create"


def _check_emptied(chain_id: int, using: str = DEFAULT_DB_ALIAS) -> Problem | None:
    """An empty chain that other chains say had events (see ``emptied`` in the module docstring)."""
    if chain_id == PLATFORM_CHAIN:
        evidence = AuditEvent.objects.using(using).filter(
            tenant__isnull=False, action=CREATE_ACTION, target_type="tenant"
        )
        detail = "the platform chain has no events, but tenant chains record tenant creations it must hold"
    else:
        # Uses audit_tenant_target_time (tenant IS NULL, target_type, target_id).
        evidence = AuditEvent.objects.using(using).filter(
            tenant__isnull=True, target_type="tenant", target_id=str(chain_id)
        )
        detail = "this tenant's chain has no events (no head, no seal), but the platform chain records its history"
    if evidence.exists():
        return Problem("emptied", None, None, detail)
    return None


def _attests(metadata: Any, cut: tuple[int, bytes] | None) -> bool:
    if cut is None or not isinstance(metadata, dict):
        return False
    anchor = bytes(cut[1]).hex()
    # Purge records written before the fix went through metadata masking, which
    # rewrote an anchor whose hex held a Luhn-valid run of 13–19 digits (about
    # 1 in 230 hashes) as "[PAN ****1234]". Their masked form still attests the
    # cut: the rest of the hex, and the anchor itself is checked by the next
    # event's link.
    return metadata.get("up_to_seq") == cut[0] and metadata.get("anchor_hash") in (anchor, mask_text(anchor))
