"""Notice e-mails about a connection's IdP: trust changed, certificate changed or expiring, metadata failing.

A service that detects one of these events audits it and calls ``notice_enqueue``
inside its transaction; the Celery task
``apps.sso.tasks.notify_certificate_event`` then calls ``notice_send`` once the
change has committed. Recipients: the tenant's active owners and admins, or
active platform staff for the platform's connection
(``selectors.notice_recipients``); a change of trust material by an
administrator (``TRUST_CHANGED``) and a connection disabled by platform staff
(``STAFF_DISABLED``), both from ``apps.sso.services.connections``, go to every
Owner only (``selectors.owner_recipients``). Each gets their
own message (no one sees the others' addresses).
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from apps.sso import selectors
from apps.sso.models import SSOConnection

CERTIFICATE_CHANGED = "idp_certificate_changed"
CERTIFICATE_EXPIRING = "idp_certificate_expiring"
METADATA_FAILED = "metadata_fetch_failed"
TRUST_CHANGED = "connection_trust_changed"
STAFF_DISABLED = "connection_staff_disabled"
# Events only the tenant's Owners are told about.
OWNER_EVENTS = frozenset({TRUST_CHANGED, STAFF_DISABLED})
SUBJECTS = {
    STAFF_DISABLED: "Security: Bastion staff disabled the SSO connection {name}",
    TRUST_CHANGED: "Security: an administrator changed which identity provider {name} trusts",
    CERTIFICATE_CHANGED: "The signing certificate of {name} changed",
    CERTIFICATE_EXPIRING: "The signing certificate of {name} expires soon",
    METADATA_FAILED: "Bastion cannot download the metadata of {name}",
}


def _enqueue_now(connection_id: int, event: str, detail: dict[str, Any]) -> None:
    # Lazy: the task module is a face that imports this service; a service may enqueue its
    # own app's task, but only from inside a function and once the transaction has committed.
    from apps.sso.tasks import notify_certificate_event

    notify_certificate_event.delay(connection_id, event, detail)


def notice_enqueue(*, connection_id: int, event: str, detail: dict[str, Any]) -> None:
    """Send the notice for ``event`` after the current transaction commits (nothing if it rolls back).

    ``detail`` must be JSON-safe (it travels through the broker). A broker
    outage does not fail the change that detected the event.
    """
    if event not in SUBJECTS:
        raise ValueError(f"unknown SSO notice: {event}")
    transaction.on_commit(functools.partial(_enqueue_now, connection_id, event, dict(detail)), robust=True)


def _settings_link(connection: SSOConnection) -> str:
    if connection.tenant is None:
        path = reverse("platform:sso:detail", kwargs={"connection_id": connection.pk})
    else:
        path = reverse(
            "sso_settings:detail", kwargs={"tenant_slug": connection.tenant.slug, "connection_id": connection.pk}
        )
    return settings.SITE_URL.rstrip("/") + path


def notice_send(*, connection_id: int, event: str, detail: dict[str, Any]) -> int:
    """E-mail the notice for ``event`` to the connection's administrators; returns how many were sent.

    Sends nothing (0) if the connection is gone or nobody is left to tell.
    SMTP errors propagate so the task can retry.
    """
    if event not in SUBJECTS:
        raise ValueError(f"unknown SSO notice: {event}")
    connection = selectors.connection_by_id(connection_id=connection_id)
    if connection is None:
        return 0
    if event in OWNER_EVENTS:
        recipients = selectors.owner_recipients(tenant=connection.tenant)
    else:
        recipients = selectors.notice_recipients(tenant=connection.tenant)
    context = {
        "connection": connection,
        "owner": connection.tenant.name if connection.tenant else "the Bastion platform",
        "detail": detail,
        "url": _settings_link(connection),
    }
    subject = SUBJECTS[event].format(name=connection.name)
    body = render_to_string(f"sso/email/{event}.txt", context)
    for address in recipients:
        send_mail(subject=subject, message=body, from_email=None, recipient_list=[address])
    return len(recipients)
