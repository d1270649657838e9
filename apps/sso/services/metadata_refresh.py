"""Refreshing a SAML connection from its IdP's metadata URL: the periodic task's service.

The download happens before any lock is taken (a slow IdP never holds a row
lock); the update then runs in one transaction holding ``select_for_update``
on the connection row, audits what changed and enqueues notices
(``apps.sso.services.notices``) that go out once the transaction commits.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record
from apps.sso.models import SSOConnection
from apps.sso.saml import binding as saml_binding
from apps.sso.saml.metadata import (
    CERT_EXPIRY_WARNING,
    certificate_expiry,
    certificate_fingerprint,
    certificate_fingerprints,
    metadata_config,
    parse_idp_metadata,
)
from apps.sso.services.notices import CERTIFICATE_CHANGED, CERTIFICATE_EXPIRING, METADATA_FAILED, notice_enqueue
from apps.sso.types import SSOConfigError

logger = logging.getLogger(__name__)


def connection_metadata_refresh(*, connection_id: int) -> str:
    """Fetch and apply the IdP metadata of one SAML connection; returns what happened.

    Returns ``"updated"`` (the IdP settings changed), ``"unchanged"``,
    ``"failed"`` (fetch or parse failed: the last good settings stay, the
    error is kept in ``config["metadata_error"]``) or ``"skipped"`` (no such
    SAML connection, no metadata URL, or the URL changed while fetching).

    Audit events on the connection's tenant (actor: system):
    ``sso.metadata_refresh`` (success or failure), ``sso.idp_certificate_changed``
    when the set of signing certificates differs, and
    ``sso.idp_certificate_expiring`` (at most once a day per certificate) for a
    certificate that expires within 30 days. Each of these two, and a failure
    (at most once a day per connection), also e-mails the connection's
    administrators once the transaction commits.
    """
    connection = SSOConnection.objects.filter(pk=connection_id, kind=SSOConnection.Kind.SAML).first()
    url = (connection.config or {}).get("metadata_url", "") if connection else ""
    if not url:
        return "skipped"

    parsed: dict[str, Any] | None = None
    xml = ""
    error = ""
    try:
        # Looked up on the module at call time, so a test (or a caller) can stand in for the network.
        xml = saml_binding.fetch_idp_metadata(url)
        parsed = parse_idp_metadata(xml)
    except SSOConfigError as exc:
        error = str(exc)

    now = timezone.now()
    with transaction.atomic():
        locked = SSOConnection.objects.select_for_update().filter(pk=connection_id).first()
        if locked is None or (locked.config or {}).get("metadata_url", "") != url:
            return "skipped"
        if parsed is None:
            _record_failure(locked, url=url, error=error, now=now)
            return "failed"
        changed = _apply(locked, url=url, xml=xml, parsed=parsed, now=now)
    return "updated" if changed else "unchanged"


def _actor() -> Actor:
    return Actor.system("saml metadata refresh")


def _record_failure(locked: SSOConnection, *, url: str, error: str, now: datetime) -> None:
    """Keep the last good settings, note the error, audit it; e-mail the admins at most once a day."""
    config = dict(locked.config or {})
    config["metadata_error"] = error
    config["metadata_error_at"] = now.isoformat()
    notify = config.get("metadata_error_notified") != now.date().isoformat()
    if notify:
        config["metadata_error_notified"] = now.date().isoformat()  # one notice a day at most
    locked.config = config
    locked.updated_at = now
    locked.save(update_fields=["config", "updated_at"])
    record(
        "sso.metadata_refresh",
        tenant=locked.tenant_id,
        actor=_actor(),
        target=locked,
        result=AuditEvent.Result.FAILURE,
        metadata={"url": url, "error": error},
    )
    logger.warning("saml metadata refresh failed", extra={"connection": locked.pk, "error": error})
    if notify:
        notice_enqueue(connection_id=locked.pk, event=METADATA_FAILED, detail={"url": url, "error": error})


def _apply(locked: SSOConnection, *, url: str, xml: str, parsed: dict[str, Any], now: datetime) -> list[str]:
    """Write the new IdP settings, audit the refresh and any certificate news; returns the changed keys."""
    config = dict(locked.config or {})
    new = metadata_config(parsed)
    changed = sorted(key for key in new if key != "metadata_valid_until" and config.get(key) != new[key])
    old_fingerprints = certificate_fingerprints(config.get("idp_x509_certs") or [])
    new_fingerprints = certificate_fingerprints(new["idp_x509_certs"])
    config.update(new)
    config["metadata_xml"] = xml
    config["metadata_fetched_at"] = now.isoformat()
    config.pop("metadata_error", None)
    config.pop("metadata_error_at", None)
    warned = dict(config.get("idp_cert_expiry_warned") or {})
    expiring = _expiring(new["idp_x509_certs"], warned=warned, now=now)
    config["idp_cert_expiry_warned"] = {fp: day for fp, day in warned.items() if fp in new_fingerprints}

    locked.config = config
    locked.updated_at = now
    locked.save(update_fields=["config", "updated_at"])
    record(
        "sso.metadata_refresh",
        tenant=locked.tenant_id,
        actor=_actor(),
        target=locked,
        metadata={"url": url, "changed": changed},
    )
    if old_fingerprints != new_fingerprints:
        _certificate_changed(locked, url=url, old=old_fingerprints, new=new_fingerprints)
    for fingerprint, expires in expiring:
        warning = {"fingerprint": fingerprint, "not_after": expires.isoformat(), "days_left": (expires - now).days}
        record("sso.idp_certificate_expiring", tenant=locked.tenant_id, actor=_actor(), target=locked, metadata=warning)
        notice_enqueue(connection_id=locked.pk, event=CERTIFICATE_EXPIRING, detail=warning)
    return changed


def _expiring(pems: list[str], *, warned: dict[str, str], now: datetime) -> list[tuple[str, datetime]]:
    """Certificates expiring within 30 days not yet warned about today; marks them warned in ``warned``."""
    expiring = []
    for pem in pems:
        expires = certificate_expiry(pem)
        fingerprint = certificate_fingerprint(pem)
        if expires - now <= CERT_EXPIRY_WARNING and warned.get(fingerprint) != now.date().isoformat():
            warned[fingerprint] = now.date().isoformat()
            expiring.append((fingerprint, expires))
    return expiring


def _certificate_changed(locked: SSOConnection, *, url: str, old: set[str], new: set[str]) -> None:
    difference = {"added": sorted(new - old), "removed": sorted(old - new)}
    # Rotation from the tested metadata URL is normal and kept (identity links stay), but it
    # changes whose signatures are trusted: high severity, and the admins are told (#7, item 3).
    record(
        "sso.idp_certificate_changed",
        tenant=locked.tenant_id,
        actor=_actor(),
        target=locked,
        metadata={**difference, "severity": "high", "url": url},
    )
    notice_enqueue(connection_id=locked.pk, event=CERTIFICATE_CHANGED, detail=difference)
