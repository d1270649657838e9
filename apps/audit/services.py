"""Audit writes: ``record()`` is the only way an event enters the log."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import Model
from django.utils import timezone

from apps.audit import chain as audit_chain
from apps.audit.models import PLATFORM_CHAIN, AuditEvent
from apps.audit.redaction import mask_mapping, mask_text
from apps.core import context
from apps.tenants.models import Tenant

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
        "actor_id": actor.id[:64],
        "actor_display": mask_text(actor.display)[:254],
        "action": action[:100],
        "target_type": kind[:64],
        "target_id": ident[:64],
        "result": str(result),
        "ip": audit_chain.normalize_ip(ctx.ip),
        "user_agent": mask_text(ctx.user_agent)[:512],
        "request_id": ctx.request_id[:64],
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
