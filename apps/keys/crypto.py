"""Secrets at rest for ``keys``: client-secret digests and encrypted signing keys.

Client secrets are 256 random bits from ``secrets``, so they are stored as a
*keyed* hash (HMAC-SHA256) rather than with a slow password KDF: a slow KDF
defends guessable passwords, and nobody can guess 2**256; it would only make
every token request cost tens of milliseconds. The HMAC key is derived from
``KEYS_SECRET_KEY`` (or ``SECRET_KEY``) with HKDF under its own label, so a
database dump alone cannot even test a guess, and the key never reaches SQL.
Comparison is constant-time (``hmac.compare_digest``).

Signing keys' private halves are Fernet-encrypted under a key derived the same
way with another label (``apps.core.secretbox``). The
``*_FALLBACKS`` settings keep old keys readable during a rotation.
"""

from __future__ import annotations

import functools
import hashlib
import hmac

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.core.secretbox import SecretBox, SecretUnreadableError, derive_key

_SALT = b"bastion-keys"
_ENCRYPTION_INFO = b"bastion.keys.signing-key-encryption.v1"
_DIGEST_INFO = b"bastion.keys.client-secret-digest.v1"


class KeyDecryptionError(RuntimeError):
    """A stored private key no configured key opens (the encryption key changed or the row was altered)."""


def _derive(material: str, info: bytes) -> bytes:
    return derive_key(material, salt=_SALT, info=info)


def _materials() -> tuple[str, ...]:
    primary = getattr(settings, "KEYS_SECRET_KEY", "") or settings.SECRET_KEY
    if not primary:
        raise ImproperlyConfigured("The keys app needs KEYS_SECRET_KEY or SECRET_KEY.")
    fallbacks = getattr(settings, "KEYS_SECRET_KEY_FALLBACKS", None)
    if fallbacks is None:
        fallbacks = (
            getattr(settings, "SECRET_KEY_FALLBACKS", []) if not getattr(settings, "KEYS_SECRET_KEY", "") else []
        )
    return (primary, *(f for f in fallbacks if f))


@functools.lru_cache(maxsize=8)
def _digest_keys(materials: tuple[str, ...]) -> tuple[bytes, ...]:
    return tuple(_derive(m, _DIGEST_INFO) for m in materials)


_BOX = SecretBox(salt=_SALT, info=_ENCRYPTION_INFO, materials=_materials)


def secret_digest(secret: str) -> str:
    """The stored form of a client secret under the current key (hex HMAC-SHA256)."""
    key = _digest_keys(_materials())[0]
    return hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()


def secret_matches(secret: str, digest: str) -> bool:
    """Whether ``secret`` hashes to ``digest`` under the current or a fallback key (constant-time per key)."""
    matched = False
    for key in _digest_keys(_materials()):
        candidate = hmac.new(key, secret.encode(), hashlib.sha256).hexdigest()
        # No early exit: the time does not tell which key matched.
        matched |= hmac.compare_digest(candidate, digest)
    return matched


def encrypt(plain: bytes) -> str:
    return _BOX.encrypt(plain)


def decrypt(token: str) -> bytes:
    try:
        return _BOX.decrypt(token)
    except SecretUnreadableError:
        raise KeyDecryptionError("A signing key cannot be decrypted with the configured keys.") from None
