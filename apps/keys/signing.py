"""The signing key ring: which keys sign, which verify, and the JWKS that publishes them.

Keys live in ``SigningKey`` rows (private halves encrypted, ``apps.keys.crypto``).
Each process keeps the ring in memory and reloads it when the ring's version in
the shared cache moves (``RING_VERSION_KEY``; every key change bumps it on
commit), so an emergency revocation is refused by every process on its next
token check. With the version missing from the cache (evicted, restarted) the
ring is reloaded from the database: correctness never depends on the cache
holding a value, only on it being shared.

Which keys verify: ``active`` and ``next`` keys, and ``retired`` ones until
``publish_until`` (the expiry of the last token they can have signed). Never
``revoked`` ones. The JWKS publishes exactly the keys that verify.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from apps.keys import crypto
from apps.keys.models import SigningKey

ALGORITHMS = ("ES256", "RS256")
RING_VERSION_KEY = "keys:ring:version"
_VERSION_TTL = 7 * 24 * 3600


class NoActiveKeyError(LookupError):
    """No key of that algorithm signs yet (a fresh installation)."""


@dataclass(frozen=True, slots=True)
class RingKey:
    kid: str
    alg: str
    status: str
    public_key: Any  # a cryptography public key object, ready for PyJWT
    public_jwk: dict[str, Any]
    publish_until: float | None  # epoch seconds; None = no end yet


@dataclass(frozen=True, slots=True)
class Ring:
    version: Any
    verifying: dict[str, RingKey]  # kid -> key, only keys that may verify right now (see ``valid``)
    loaded_at: float

    def valid(self, kid: str, now: float) -> RingKey | None:
        key = self.verifying.get(kid)
        if key is None or (key.publish_until is not None and key.publish_until <= now):
            return None
        return key


_lock = threading.Lock()
_ring: Ring | None = None
_signers: dict[str, tuple[str, Any]] = {}  # alg -> (kid, private key), for the current ring version


def generate(alg: str) -> tuple[bytes, dict[str, Any], str]:
    """A new key pair: ``(private PEM, public JWK, kid)``; the kid is the RFC 7638 thumbprint."""
    if alg == "ES256":
        private: Any = ec.generate_private_key(ec.SECP256R1())
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    elif alg == "RS256":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}")
    members = {k: jwk[k] for k in sorted(jwk) if k in {"crv", "e", "kty", "n", "x", "y"}}
    thumb = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest()
    kid = jwt.utils.base64url_encode(thumb).decode()
    jwk.update(kid=kid, alg=alg, use="sig")
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return pem, jwk, kid


def bump_ring_version() -> None:
    """Tell every process to reload the ring, once the current transaction commits (this one at once)."""

    def bump() -> None:
        cache.set(RING_VERSION_KEY, time.time_ns(), _VERSION_TTL)
        forget_ring()

    forget_ring()
    transaction.on_commit(bump)


def forget_ring() -> None:
    global _ring
    with _lock:
        _ring = None
        _signers.clear()


def _epoch(value: datetime | None) -> float | None:
    return value.timestamp() if value is not None else None


def _load(version: Any) -> Ring:
    now = timezone.now()
    rows = SigningKey.objects.filter(status__in=["next", "active", "retired"]).exclude(
        status="retired", publish_until__lte=now
    )
    verifying = {
        row.kid: RingKey(
            kid=row.kid,
            alg=row.alg,
            status=row.status,
            public_key=(ECAlgorithm if row.alg == "ES256" else RSAAlgorithm).from_jwk(row.public_jwk),
            public_jwk=row.public_jwk,
            publish_until=_epoch(row.publish_until) if row.status == "retired" else None,
        )
        for row in rows
    }
    return Ring(version=version, verifying=verifying, loaded_at=time.monotonic())


def ring(version: Any = None, *, have_version: bool = False) -> Ring:
    """The current ring; ``version`` is the shared-cache value when the caller already read it.

    A missing version (never set, or evicted) reloads from the database at
    most once a second per process and never trusts an old ring for longer.
    """
    global _ring
    if not have_version:
        version = cache.get(RING_VERSION_KEY)
    current = _ring
    if current is not None and version is not None and current.version == version:
        return current
    if current is not None and version is None and time.monotonic() - current.loaded_at < 1.0:
        return current
    if version is None:
        # Nobody has bumped the ring since the cache started: give it a version, so processes
        # stop reloading once a second (any later bump replaces it; ``add`` never overwrites).
        cache.add(RING_VERSION_KEY, time.time_ns(), _VERSION_TTL)
    fresh = _load(version)
    with _lock:
        _ring = fresh
        _signers.clear()
    return fresh


def signer(alg: str) -> tuple[str, Any]:
    """``(kid, private key)`` of the active key for ``alg``; raises NoActiveKeyError (services bootstraps one)."""
    current = ring()
    found = _signers.get(alg)
    if found is not None and found[0] in current.verifying:
        return found
    row = SigningKey.objects.filter(alg=alg, status="active").first()
    if row is None:
        raise NoActiveKeyError(alg)
    private = serialization.load_pem_private_key(crypto.decrypt(row.private_key), password=None)
    _signers[alg] = (row.kid, private)
    return row.kid, private


def jwks() -> dict[str, Any]:
    """The public JSON Web Key Set: every key that may verify a token right now."""
    now = time.time()
    current = ring()
    keys = [key.public_jwk for key in current.verifying.values() if current.valid(key.kid, now) is not None]
    keys.sort(key=lambda jwk: (jwk["alg"], jwk["kid"]))
    return {"keys": keys}
