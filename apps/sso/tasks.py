"""Celery adapters for SSO (thin: take ids, call one selector or service of apps.sso)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from apps.core.tasking import EMAIL_RETRY_POLICY
from apps.sso import replay, selectors
from apps.sso.services.domain_notices import domain_notice_send
from apps.sso.services.domains import domain_check, domain_claims_sweep
from apps.sso.services.drafts import connection_drafts_purge
from apps.sso.services.emergency import sign_in_notice_send
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


# One claim's DNS check. Idempotent: ``domain_check`` claims the check with a conditional UPDATE
# (at most one lookup per claim per 30 s) and verifies only a still-pending claim, so a
# redelivery after a crash (acks_late) does nothing more. The lookup is bounded by SSO_DNS_TIMEOUT.
@shared_task(name="apps.sso.tasks.check_domain_claim", acks_late=True, soft_time_limit=30, time_limit=45)
def check_domain_claim(domain_id: int) -> str:
    """Look up one pending claim's TXT record; returns the check's status."""
    claim = selectors.domain_get_any(domain_id=domain_id)
    if claim is None:
        return "gone"
    return domain_check(domain=claim, actor=None).status


# config/celery.py's beat schedule runs this every 15 minutes: expires claims pending for 14 days,
# then fans out one check per pending claim, so one slow DNS server never holds up the others.
@shared_task(name="apps.sso.tasks.check_pending_domains", acks_late=True, soft_time_limit=60, time_limit=90)
def check_pending_domains() -> int:
    """Expire stale claims and enqueue a check for every other pending claim; returns how many."""
    ids = domain_claims_sweep()
    for domain_id in ids:
        check_domain_claim.delay(domain_id)
    return len(ids)


# Only transient delivery failures are retried (EMAIL_RETRY_POLICY); a vanished tenant sends nothing.
@shared_task(name="apps.sso.tasks.notify_domain_event", **EMAIL_RETRY_POLICY, soft_time_limit=60, time_limit=90)
def notify_domain_event(tenant_id: int | None, claimant_id: int | None, domain: str, event: str) -> int:
    """E-mail the claimant and the tenant's administrators that a domain claim was verified or expired."""
    return domain_notice_send(tenant_id=tenant_id, claimant_id=claimant_id, domain=domain, event=event)


# Enqueued after an emergency sign-in commits (apps.sso.services.emergency). Only transient delivery
# failures are retried; a vanished sign-in sends nothing. A redelivery may e-mail twice: better than never.
@shared_task(name="apps.sso.tasks.notify_emergency_sign_in", **EMAIL_RETRY_POLICY, soft_time_limit=60, time_limit=90)
def notify_emergency_sign_in(sign_in_id: int) -> int:
    """E-mail every Owner of the tenant that one of its emergency accounts signed in; returns how many."""
    return sign_in_notice_send(sign_in_id=sign_in_id)
