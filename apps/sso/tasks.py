"""Celery adapters for SSO (thin: take ids, call one selector or service of apps.sso)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.core.tasking import EMAIL_RETRY_POLICY
from apps.sso import replay, selectors
from apps.sso.services.drafts import connection_drafts_purge
from apps.sso.services.metadata_refresh import connection_metadata_refresh
from apps.sso.services.notices import notice_send


# Refreshing is idempotent (the same document gives the same config; audit events for
# certificate expiry are de-duplicated per day), so a redelivery after a crash (acks_late)
# does no harm. The fetch itself is bounded at 10 s, the limits leave room for the lock.
@shared_task(name="apps.sso.tasks.refresh_saml_metadata", acks_late=True, soft_time_limit=60, time_limit=90)
def refresh_saml_metadata(connection_id: int) -> str:
    """Fetch and apply one SAML connection's IdP metadata; returns updated/unchanged/failed/skipped."""
    return connection_metadata_refresh(connection_id=connection_id)


# config/celery.py's beat schedule runs this every 6 hours: it only fans out, one task per
# connection, so one slow IdP never holds up the others.
@shared_task(name="apps.sso.tasks.refresh_all_saml_metadata", acks_late=True, soft_time_limit=60, time_limit=90)
def refresh_all_saml_metadata() -> int:
    """Enqueue a refresh for every SAML connection with a metadata URL; returns how many."""
    ids = selectors.saml_connection_ids_to_refresh()
    for connection_id in ids:
        refresh_saml_metadata.delay(connection_id)
    return len(ids)


# Expired rows of the replay store are useless (an expired assertion is refused on its own);
# purging them daily keeps the table small. Idempotent.
@shared_task(name="apps.sso.tasks.purge_seen_assertions", acks_late=True, soft_time_limit=120, time_limit=180)
def purge_seen_assertions() -> int:
    """Delete expired replay-store rows; returns how many."""
    return replay.purge_seen_assertions()


# Only transient delivery failures are retried (EMAIL_RETRY_POLICY, as for invitations); a
# missing connection sends nothing. A redelivery may send a notice twice, which is better than never.
@shared_task(name="apps.sso.tasks.notify_certificate_event", **EMAIL_RETRY_POLICY, soft_time_limit=60, time_limit=90)
def notify_certificate_event(connection_id: int, event: str, detail: dict[str, Any]) -> int:
    """E-mail a connection's administrators about an IdP certificate or metadata event; returns how many."""
    return notice_send(connection_id=connection_id, event=event, detail=detail)


# Drafts the add page created and nobody finished (config/celery.py: daily). Idempotent: each
# row is re-checked under a lock and a second run finds nothing to delete.
@shared_task(name="apps.sso.tasks.purge_abandoned_drafts", acks_late=True, soft_time_limit=120, time_limit=180)
def purge_abandoned_drafts() -> int:
    """Delete SSO drafts untouched and never successfully tested for 7 days; returns how many."""
    return connection_drafts_purge()
