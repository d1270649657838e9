"""Webhook signing secrets at rest (Fernet) and the signature every delivery carries.

Secrets are 256 random bits, shown to the admin once. Bastion must sign with
them later, so it keeps them encrypted (not hashed) under a key derived from
``SECRET_KEY`` with HKDF and a label of its own (``SECRET_KEY_FALLBACKS`` keep
old rows readable during a key rotation). The plain secret leaves this module
only as ``decrypt``'s return value; callers never render, log or audit it.

Signature (the recipe receivers follow; README "Alert webhooks")::

    Bastion-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, f"{t}.{raw body}")>[,v1=<…>]

Several ``v1`` values appear while a rotated secret overlaps the new one. A
receiver takes ``t`` and every ``v1``, refuses a ``t`` more than 5 minutes
from its clock, computes the HMAC over ``t``, a dot and the raw body bytes
(before any JSON parsing) and accepts when any ``v1`` matches in constant time;
``Bastion-Event-Id`` (also inside the body) lets it drop a redelivery.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

from apps.core.secretbox import SecretBox, SecretUnreadableError

SIGNATURE_HEADER = "Bastion-Signature"
EVENT_ID_HEADER = "Bastion-Event-Id"
TOLERANCE_SECONDS = 300
SECRET_PREFIX = "whsec_"  # noqa: S105 -- a prefix that tells people what the value is, not a secret
_BOX = SecretBox(
    salt=b"bastion-alerts",
    info=b"bastion.alerts.webhook-secret-encryption.v1",
    unreadable="the webhook secret cannot be decrypted with the configured keys",
)
__all__ = ["SecretUnreadableError", "decrypt", "encrypt", "new_secret", "sign"]


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def encrypt(secret: str) -> str:
    return _BOX.encrypt(secret.encode())


def decrypt(token: str) -> str:
    return _BOX.decrypt(token).decode()


def sign(body: bytes, secrets_: Iterable[str], *, timestamp: int | None = None) -> str:
    """The ``Bastion-Signature`` header value for ``body`` under each secret (newest first)."""
    t = int(time.time()) if timestamp is None else timestamp
    signed = str(t).encode() + b"." + body
    parts = [f"t={t}"]
    parts += [f"v1={hmac.new(s.encode(), signed, hashlib.sha256).hexdigest()}" for s in secrets_]
    return ",".join(parts)


def verify(
    body: bytes, header: str, secret: str, *, now: float | None = None, tolerance: int = TOLERANCE_SECONDS
) -> bool:
    """The receiver's side of the recipe (used by the tests and quoted in the README)."""
    timestamp, candidates = None, []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isdigit():
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)
