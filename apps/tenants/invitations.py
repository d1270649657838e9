"""Invitation links: the signed token and how long it lives.

Its own module so that the e-mail that carries a link and the service that
reads it back both build on it without importing each other.
"""

from __future__ import annotations

from django.core import signing

from apps.tenants.models import Membership

INVITATION_SALT = "bastion.invitation"
INVITATION_MAX_AGE = 7 * 24 * 3600
# Longer than any token we issue; anything longer is refused before unsigning.
INVITATION_TOKEN_MAX_LENGTH = 512


def invitation_token(membership: Membership) -> str:
    """A signed, expiring token naming one membership (and the invitee's e-mail)."""
    return signing.dumps({"m": membership.pk, "e": membership.user.email}, salt=INVITATION_SALT, compress=True)
