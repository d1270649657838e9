"""The audit hash chain: canonical event payloads and HMAC-SHA256 links.

``link = HMAC(link_key, prev_link || payload)``. The keys never leave this
process: ``record()`` locks the chain head row, computes the link here, and
sends PostgreSQL only the result. Nothing derived from the key (the key, its
HMAC pads, a derived key) is ever a statement parameter, so it cannot show up
in ``pg_stat_activity``, statement logs or error logs, and someone who can read
or edit rows still cannot forge a chain that verifies.

Keys are derived per purpose from ``settings.AUDIT_HMAC_KEY`` with HKDF-SHA256
and distinct labels (``bastion.audit.link.v1`` for links,
``bastion.audit.seal.v1`` for seals), so a key for one purpose is never the key
for another, and never equal to a key another part of Bastion derives (the SSO
secret encryption key uses its own label; see tests/audit/test_key_exposure.py).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

GENESIS = bytes(32)
PAYLOAD_VERSION = 1
# HKDF labels: one per purpose. A new purpose gets a new label, never a reused one.
LINK_LABEL = b"bastion.audit.link.v1"
SEAL_LABEL = b"bastion.audit.seal.v1"
_SALT = b"bastion-audit"


@lru_cache(maxsize=8)
def derive_key(material: str, label: bytes) -> bytes:
    """A 32-byte key for one purpose (``label``) from the configured secret (HKDF-SHA256)."""
    if not material:
        raise ImproperlyConfigured("AUDIT_HMAC_KEY is not set: the audit chain needs its own key.")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=label).derive(material.encode())


def link_key() -> bytes:
    """The key of chain links (read per call, so settings overrides in tests take effect)."""
    return derive_key(settings.AUDIT_HMAC_KEY, LINK_LABEL)


def seal_key() -> bytes:
    """The key of seal MACs."""
    return derive_key(settings.AUDIT_HMAC_KEY, SEAL_LABEL)


def link(prev: bytes, payload: bytes) -> bytes:
    """The chain link of an event: HMAC-SHA256 under the link key of ``prev || payload``."""
    return hmac.new(link_key(), prev + payload, hashlib.sha256).digest()


def seal_mac(chain: int, seq: int, head_hash: bytes) -> bytes:
    """The MAC of a seal: binds a chain's head hash to its position."""
    return hmac.new(seal_key(), f"seal:{chain}:{seq}:".encode() + head_hash, hashlib.sha256).digest()


def normalize_json(value: Any, _depth: int = 0) -> Any:
    """Make metadata survive a jsonb round trip unchanged.

    jsonb rewrites exponent floats (1e100 comes back as an integer) and refuses
    NUL characters; such values are turned into strings up front so that the
    hashed payload equals what verification reads back.
    """
    if _depth > 16:
        return str(value)
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or "e" in repr(value):
            return repr(value)
        # jsonb's numeric has no negative zero: -0.0 comes back as 0.0.
        return 0.0 if value == 0 else value
    if isinstance(value, str):
        return value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, dict):
        return {normalize_json(str(k), _depth + 1): normalize_json(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [normalize_json(v, _depth + 1) for v in value]
    return normalize_json(str(value), _depth + 1)


def normalize_ip(ip: Any) -> str | None:
    """The canonical text of an IP address, or None if ``ip`` is not one.

    Accepts a string or an ``ipaddress`` object (the database may return
    either). An IPv6 zone id (``fe80::1%eth0``) is dropped: PostgreSQL's inet
    type refuses it, and it only names an interface of the receiving host.
    """
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(str(ip).split("%", 1)[0])
    except ValueError:
        return None
    return str(address)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def payload(
    *,
    chain: int,
    occurred_at: datetime,
    tenant_id: int | None,
    actor_type: str,
    actor_id: str,
    actor_display: str,
    action: str,
    target_type: str,
    target_id: str,
    result: str,
    ip: str | None,
    user_agent: str,
    request_id: str,
    metadata: Any,
) -> bytes:
    """Canonical bytes of an event: every stored column except ids and links."""
    return json.dumps(
        [
            PAYLOAD_VERSION,
            chain,
            iso(occurred_at),
            tenant_id,
            actor_type,
            actor_id,
            actor_display,
            action,
            target_type,
            target_id,
            result,
            normalize_ip(ip),
            user_agent,
            request_id,
            metadata,
        ],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def payload_of(event: Any) -> bytes:
    """The canonical payload of a stored event row."""
    return payload(
        chain=event.chain,
        occurred_at=event.occurred_at,
        tenant_id=event.tenant_id,
        actor_type=event.actor_type,
        actor_id=event.actor_id,
        actor_display=event.actor_display,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        result=event.result,
        ip=event.ip,
        user_agent=event.user_agent,
        request_id=event.request_id,
        metadata=event.metadata,
    )
