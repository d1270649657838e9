"""The replay store: assertion and ID-token ids already accepted, kept until they expire.

Shared by SAML (assertion IDs) and OIDC (``jti`` or a hash of the token): one
table, ``SeenAssertion``, unique on (connection, id). ``remember`` inserts in
its own savepoint, so the unique violation of a replay never poisons the
caller's transaction; a concurrent duplicate blocks on the unique index and
then counts as a replay.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.db import IntegrityError, transaction

from apps.sso.models import SeenAssertion, SSOConnection


def remember(*, connection: SSOConnection, assertion_id: str, expires_at: datetime) -> bool:
    """Record ``assertion_id`` for ``connection`` until ``expires_at``; False if it was already recorded.

    Call it outside (before) any transaction that might roll back after a
    failure, or a rolled-back sign-in leaves the id usable again until it expires.
    """
    try:
        with transaction.atomic():
            SeenAssertion.objects.create(connection=connection, assertion_id=assertion_id, expires_at=expires_at)
    except IntegrityError:
        return False
    return True


def purge_seen_assertions(*, now: datetime | None = None) -> int:
    """Delete replay-store rows whose assertion has expired (SAML and OIDC alike); returns how many."""
    deleted, _ = SeenAssertion.objects.filter(expires_at__lt=now or datetime.now(UTC)).delete()
    return deleted
