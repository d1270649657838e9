"""Notice e-mails about a connection's identity provider: signing certificate changed or expiring, metadata failing.

``refresh_connection_metadata`` (apps.sso.metadata) audits these events and
calls ``enqueue`` inside its transaction; the Celery task
``apps.sso.tasks.notify_certificate_event`` then calls ``send`` once the
change has committed. Recipients: the tenant's active owners and admins, or
active platform staff for the platform's connection; a change of trust
material by an administrator (``TRUST_CHANGED``, from
``apps.sso.services.connections``) goes to every Owner only. Each gets their own
message (no one sees the others' addresses).
"""

from __future__ import annotations

import functools
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from apps.accounts.models import User
from apps.sso import selectors
from apps.sso.models import SSOConnection
from apps.tenants.models import Membership, Tenant

CERTIFICATE_CHANGED = "idp_certificate_changed"
CERTIFICATE_EXPIRING = "idp_certificate_expiring"
METADATA_FAILED = "metadata_fetch_failed"
TRUST_CHANGED = "connection_trust_changed"
SUBJECTS = {
    TRUST_CHANGED: "Security: an administrator changed which identity provider {name} trusts",
    CERTIFICATE_CHANGED: "The signing certificate of {name} changed",
    CERTIFICATE_EXPIRING: "The signing certificate of {name} expires soon",
    METADATA_FAILED: "Bastion cannot download the metadata of {name}",
}


def _enqueue_now(connection_id: int, event: str, detail: dict[str, Any]) -> None:
    from apps.sso.tasks import notify_certificate_event

    notify_certificate_event.delay(connection_id, event, detail)


def enqueue(*, connection_id: int, event: str, detail: dict[str, Any]) -> None:
    """Send the notice for ``event`` after the current transaction commits (nothing if it rolls back).

    ``detail`` must be JSON-safe (it travels through the broker). A broker
    outage does not fail the refresh that detected the event.
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


def owner_recipients(*, tenant: Tenant | None) -> list[str]:
    """Every active Owner of ``tenant`` (active platform staff for the platform): who hears of trust changes.

    Owners, not admins: an admin with ``sso.manage`` is the one who could make
    the change, so the notice goes to the people above them. Sorted addresses.
    """
    if tenant is None:
        qs = User.objects.filter(is_active=True, is_staff=True)
    else:
        qs = User.objects.filter(
            is_active=True,
            memberships__tenant=tenant,
            memberships__status=Membership.Status.ACTIVE,
            memberships__role=Membership.Role.OWNER,
        )
    return sorted({email for email in qs.values_list("email", flat=True) if email})


def send(*, connection_id: int, event: str, detail: dict[str, Any]) -> int:
    """E-mail the notice for ``event`` to the connection's administrators; returns how many were sent.

    Sends nothing (0) if the connection is gone or nobody is left to tell.
    SMTP errors propagate so the task can retry.
    """
    if event not in SUBJECTS:
        raise ValueError(f"unknown SSO notice: {event}")
    connection = selectors.connection_by_id(connection_id=connection_id)
    if connection is None:
        return 0
    if event == TRUST_CHANGED:
        recipients = owner_recipients(tenant=connection.tenant)
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
