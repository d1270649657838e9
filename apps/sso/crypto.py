"""Encryption of stored IdP secrets (the OIDC client secret) with Fernet.

The key is ``settings.SSO_SECRET_KEY`` when set, otherwise one derived from
``SECRET_KEY`` with HKDF-SHA256 (a separate ``info`` label, so the derived key
is useless for anything Django signs). ``SSO_SECRET_KEY`` may be a Fernet key
(32 url-safe base64 bytes) or any string, which is derived the same way.
Old keys keep decrypting during a rotation: ``SSO_SECRET_KEY_FALLBACKS`` and
Django's ``SECRET_KEY_FALLBACKS`` are tried after the current key.

Fernet and HKDF come from ``apps.core.secretbox``.

Plain text never leaves this module except as the return value of
``decrypt``; callers must not render, log or audit it.
"""

from __future__ import annotations

import base64
import binascii

from django.conf import settings

from apps.core.secretbox import SecretBox, SecretUnreadableError, setting_materials
from apps.sso.types import SSOConfigError


def _as_fernet_key(value: str) -> bytes:
    """``value`` itself if it is already a Fernet key, else a key derived from it."""
    try:
        if len(base64.urlsafe_b64decode(value.encode())) == 32:
            return value.encode()
    except (binascii.Error, ValueError):
        pass
    return _BOX.fernet_key(value)


def _operator_keys() -> list[bytes]:
    primary = getattr(settings, "SSO_SECRET_KEY", "") or ""
    if not primary:
        return []
    fallbacks = getattr(settings, "SSO_SECRET_KEY_FALLBACKS", []) or []
    return [_as_fernet_key(primary), *(_as_fernet_key(k) for k in fallbacks if k)]


_BOX = SecretBox(
    salt=b"bastion-sso",
    info=b"bastion.sso.secret-encryption.v1",
    materials=setting_materials,
    extra_keys=_operator_keys,
)


def _keys() -> list[bytes]:
    """Every key that may open a stored secret, the encrypting one first."""
    return list(_BOX.keys())


def encrypt(plain: str) -> str:
    """Encrypt ``plain`` under the current key; returns an ASCII token ('' stays '')."""
    return _BOX.encrypt(plain.encode()) if plain else ""


def decrypt(token: str) -> str:
    """The plain text of ``token`` ('' stays '').

    Raises SSOConfigError when no configured key opens it (the key was
    rotated away or the value was tampered with): the admin must enter the
    secret again.
    """
    if not token:
        return ""
    try:
        return _BOX.decrypt(token).decode()
    except SecretUnreadableError:
        raise SSOConfigError(
            "The stored client secret cannot be decrypted (the encryption key changed); enter it again."
        ) from None


def needs_rotation(token: str) -> bool:
    """True if ``token`` is readable but not encrypted under the current primary key."""
    return bool(token) and _BOX.needs_rotation(token)
