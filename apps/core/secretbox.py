"""Secrets Bastion must read back (an IdP client secret, a webhook signing secret, a private key).

They cannot be stored as hashes (an HMAC or a signature needs the plain value), so they are
stored encrypted with Fernet under a key derived per purpose with HKDF-SHA256 from a
configured secret: each purpose has its own salt and ``info`` label, so a key is useless for
anything else, and the configured secret itself never reaches the database. Old secrets
(``*_FALLBACKS`` settings) still decrypt during a rotation; the first key encrypts.

Plain text leaves a box only as ``decrypt``'s return value; callers must not render, log or
audit it. Each app keeps one module-level :class:`SecretBox` for its purpose.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadableError(RuntimeError):
    """No configured key opens a stored secret (the key changed without a fallback, or the row was altered)."""


def derive_key(material: str, *, salt: bytes, info: bytes) -> bytes:
    """32 raw bytes for one purpose (``salt``, ``info``) from any secret string (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(material.encode())


def setting_materials(primary: str = "SECRET_KEY", fallbacks: str = "SECRET_KEY_FALLBACKS") -> tuple[str, ...]:
    """The current value of setting ``primary`` followed by the non-empty values of ``fallbacks``."""
    current = getattr(settings, primary, "") or ""
    if not current:
        raise ImproperlyConfigured(f"Stored secrets need {primary} to be set.")
    return (current, *(value for value in getattr(settings, fallbacks, None) or [] if value))


@functools.lru_cache(maxsize=32)
def _fernet(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key) for key in keys])


class SecretBox:
    """Fernet encryption under keys derived for one purpose.

    ``materials`` returns the configured secrets, current first (read on every call, so a
    settings override in a test or a rotation takes effect at once; the derived keys are
    cached per tuple of secrets). ``extra_keys`` may put ready Fernet keys in front (an
    operator-supplied key such as ``SSO_SECRET_KEY``).
    """

    def __init__(
        self,
        *,
        salt: bytes,
        info: bytes,
        materials: Callable[[], Sequence[str]] = setting_materials,
        extra_keys: Callable[[], Sequence[bytes]] | None = None,
        unreadable: str = "A stored secret cannot be decrypted with the configured keys; set it again.",
    ) -> None:
        self.salt, self.info, self._materials, self._extra_keys = salt, info, materials, extra_keys
        self.unreadable = unreadable

    def fernet_key(self, material: str) -> bytes:
        """The Fernet key (url-safe base64) this box derives from ``material``."""
        return _derived(material, self.salt, self.info)

    def keys(self) -> tuple[bytes, ...]:
        """Every key that may open a token, the encrypting one first."""
        extra = tuple(self._extra_keys()) if self._extra_keys else ()
        try:
            derived = tuple(self.fernet_key(material) for material in self._materials())
        except ImproperlyConfigured:
            if not extra:
                raise
            derived = ()
        return extra + derived

    def encrypt(self, plain: bytes) -> str:
        """``plain`` encrypted under the current key, as an ASCII token."""
        return _fernet(self.keys()).encrypt(plain).decode("ascii")

    def decrypt(self, token: str) -> bytes:
        """The plain bytes of ``token``; :class:`SecretUnreadableError` when no key opens it."""
        try:
            return _fernet(self.keys()).decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            raise SecretUnreadableError(self.unreadable) from None

    def needs_rotation(self, token: str) -> bool:
        """True if ``token`` opens only under an old key (re-encrypt it under the current one)."""
        try:
            Fernet(self.keys()[0]).decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeError):
            return True
        return False


@functools.lru_cache(maxsize=64)
def _derived(material: str, salt: bytes, info: bytes) -> bytes:
    return base64.urlsafe_b64encode(derive_key(material, salt=salt, info=info))
