"""Encryption of the incident webhook's signing secrets (Fernet, key derived from SECRET_KEY).

An HMAC can only be checked with the plain secret, so the secret cannot be
stored as a hash; it is stored encrypted, the way ``apps.sso.crypto`` stores
IdP client secrets: a Fernet key derived with HKDF-SHA256 from ``SECRET_KEY``
under this module's own label (so the key is useless for anything else), old
keys from ``SECRET_KEY_FALLBACKS`` still decrypting during a rotation. A
database dump alone reveals no secret.

Plain text leaves this module only as the return value of ``decrypt``; callers
use it to compute an HMAC and never render, log or audit it. (``sso`` and
``keys`` are on this app's floor, so this app may not import their helpers;
the derivation is the same, with a different label.)
"""

from __future__ import annotations

import base64
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

_SALT = b"bastion-breakglass"
_INFO = b"bastion.breakglass.incident-webhook-secret.v1"


class SecretUnreadableError(RuntimeError):
    """No configured key opens a stored secret (SECRET_KEY changed without a fallback, or the row was altered)."""


def _derive(material: str) -> bytes:
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=_INFO).derive(material.encode())
    return base64.urlsafe_b64encode(raw)


def _materials() -> tuple[str, ...]:
    if not settings.SECRET_KEY:
        raise ImproperlyConfigured("Incident webhook secrets need SECRET_KEY.")
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", []) or []
    return (settings.SECRET_KEY, *(k for k in fallbacks if k))


@functools.lru_cache(maxsize=4)
def _fernet_for(materials: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_derive(m)) for m in materials])


def encrypt(plain: str) -> str:
    """``plain`` encrypted under the current key (an ASCII token)."""
    return _fernet_for(_materials()).encrypt(plain.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """The plain secret of ``token``; raises SecretUnreadableError when no key opens it."""
    try:
        return _fernet_for(_materials()).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SecretUnreadableError("The stored webhook secret cannot be decrypted; rotate it.") from None
