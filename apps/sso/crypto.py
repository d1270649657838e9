"""Encryption of stored IdP secrets (the OIDC client secret) with Fernet.

The key is ``settings.SSO_SECRET_KEY`` when set, otherwise one derived from
``SECRET_KEY`` with HKDF-SHA256 (a separate ``info`` label, so the derived key
is useless for anything Django signs). ``SSO_SECRET_KEY`` may be a Fernet key
(32 url-safe base64 bytes) or any string, which is derived the same way.
Old keys keep decrypting during a rotation: ``SSO_SECRET_KEY_FALLBACKS`` and
Django's ``SECRET_KEY_FALLBACKS`` are tried after the current key.

Plain text never leaves this module except as the return value of
``decrypt``; callers must not render, log or audit it.
"""

from __future__ import annotations

import base64
import binascii
import functools

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from apps.sso.types import SSOConfigError

_HKDF_INFO = b"bastion.sso.secret-encryption.v1"
_HKDF_SALT = b"bastion-sso"


def _derive(material: str) -> bytes:
    """A Fernet key from any secret string (HKDF-SHA256, 32 bytes)."""
    raw = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO).derive(material.encode())
    return base64.urlsafe_b64encode(raw)


def _as_fernet_key(value: str) -> bytes:
    """``value`` itself if it is already a Fernet key, else a key derived from it."""
    try:
        if len(base64.urlsafe_b64decode(value.encode())) == 32:
            return value.encode()
    except (binascii.Error, ValueError):
        pass
    return _derive(value)


def _keys() -> list[bytes]:
    primary = getattr(settings, "SSO_SECRET_KEY", "") or ""
    keys: list[bytes] = []
    if primary:
        keys.append(_as_fernet_key(primary))
        keys.extend(_as_fernet_key(k) for k in getattr(settings, "SSO_SECRET_KEY_FALLBACKS", []) or [] if k)
    if not settings.SECRET_KEY:
        if not keys:
            raise ImproperlyConfigured("SSO secrets need SSO_SECRET_KEY or SECRET_KEY to be set.")
    else:
        keys.append(_derive(settings.SECRET_KEY))
        keys.extend(_derive(k) for k in getattr(settings, "SECRET_KEY_FALLBACKS", []) or [] if k)
    return keys


@functools.lru_cache(maxsize=4)
def _fernet_for(keys: tuple[bytes, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def _fernet() -> MultiFernet:
    # Cached per key tuple, so settings overrides in tests take effect at once.
    return _fernet_for(tuple(_keys()))


def encrypt(plain: str) -> str:
    """Encrypt ``plain`` under the current key; returns an ASCII token ('' stays '')."""
    if not plain:
        return ""
    return _fernet().encrypt(plain.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """The plain text of ``token`` ('' stays '').

    Raises SSOConfigError when no configured key opens it (the key was
    rotated away or the value was tampered with): the admin must enter the
    secret again.
    """
    if not token:
        return ""
    try:
        return _fernet().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError):
        raise SSOConfigError(
            "The stored client secret cannot be decrypted (the encryption key changed); enter it again."
        ) from None


def needs_rotation(token: str) -> bool:
    """True if ``token`` is readable but not encrypted under the current primary key."""
    if not token:
        return False
    keys = _keys()
    try:
        Fernet(keys[0]).decrypt(token.encode("ascii"))
    except InvalidToken:
        return True
    return False
