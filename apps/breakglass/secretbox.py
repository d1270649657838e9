"""Encryption of the incident webhook's signing secrets (``apps.core.secretbox``, this purpose's own key).

An HMAC can only be checked with the plain secret, so the secret is stored
encrypted rather than hashed, under a Fernet key derived from ``SECRET_KEY``
(old keys from ``SECRET_KEY_FALLBACKS`` still decrypt during a rotation). A
database dump alone reveals no secret. Plain text leaves this module only as
the return value of ``decrypt``; callers use it to compute an HMAC and never
render, log or audit it.
"""

from __future__ import annotations

from apps.core.secretbox import SecretBox, SecretUnreadableError

__all__ = ["SecretUnreadableError", "decrypt", "encrypt"]

_BOX = SecretBox(
    salt=b"bastion-breakglass",
    info=b"bastion.breakglass.incident-webhook-secret.v1",
    unreadable="The stored webhook secret cannot be decrypted; rotate it.",
)


def encrypt(plain: str) -> str:
    """``plain`` encrypted under the current key (an ASCII token)."""
    return _BOX.encrypt(plain.encode())


def decrypt(token: str) -> str:
    """The plain secret of ``token``; raises SecretUnreadableError when no key opens it."""
    return _BOX.decrypt(token).decode()
