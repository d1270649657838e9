"""E-mails about a domain claim's result: verified (by DNS or by staff), expired unproven, or ended (another
organisation proved the domain first).

``domain_notice_enqueue`` is called inside the transaction that changed the
claim; the Celery task ``apps.sso.tasks.notify_domain_event`` then calls
``domain_notice_send`` once that change has committed (nothing is sent for a
change that rolled back). Recipients: the admin who claimed the domain (if
still active) and the tenant's active owners and admins (platform: active
staff), each in their own message.
"""

from __future__ import annotations

import functools

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse

from apps.sso import selectors

DOMAIN_VERIFIED = "domain_verified"
DOMAIN_EXPIRED = "domain_expired"
DOMAIN_LOST = "domain_claim_ended"
SUBJECTS = {
    DOMAIN_VERIFIED: "{domain} is verified for {owner}",
    DOMAIN_EXPIRED: "The claim on {domain} expired without its DNS record",
    DOMAIN_LOST: "The claim on {domain} ended: another organisation proved it first",
}


def _enqueue_now(tenant_id: int | None, claimant_id: int | None, domain: str, event: str) -> None:
    # Lazy: the task module is a face that imports services; a service may enqueue its own
    # app's task, from inside a function, once the transaction has committed.
    from apps.sso.tasks import notify_domain_event

    notify_domain_event.delay(tenant_id, claimant_id, domain, event)


def domain_notice_enqueue(*, tenant_id: int | None, claimant_id: int | None, domain: str, event: str) -> None:
    """Send the ``event`` e-mail about ``domain`` after the current transaction commits (robust to a broker outage)."""
    if event not in SUBJECTS:
        raise ValueError(f"unknown domain notice: {event}")
    transaction.on_commit(functools.partial(_enqueue_now, tenant_id, claimant_id, domain, event), robust=True)


def domain_notice_send(*, tenant_id: int | None, claimant_id: int | None, domain: str, event: str) -> int:
    """E-mail the claimant and the tenant's administrators about ``domain``; returns how many were sent.

    0 if the tenant is gone. SMTP errors propagate so the task can retry.
    """
    if event not in SUBJECTS:
        raise ValueError(f"unknown domain notice: {event}")
    tenant = selectors.tenant_for_notice(tenant_id=tenant_id)
    if tenant_id is not None and tenant is None:
        return 0
    recipients = set(selectors.notice_recipients(tenant=tenant))
    claimant = selectors.active_user_email(user_id=claimant_id)
    if claimant:
        recipients.add(claimant)
    if tenant is None:
        path = reverse("platform:sso:domains")
    else:
        path = reverse("sso_settings:domains", kwargs={"tenant_slug": tenant.slug})
    owner = tenant.name if tenant is not None else "the Bastion platform"
    context = {"domain": domain, "owner": owner, "url": settings.SITE_URL.rstrip("/") + path}
    subject = SUBJECTS[event].format(domain=domain, owner=owner)
    body = render_to_string(f"sso/email/{event}.txt", context)
    for address in sorted(recipients):
        send_mail(subject=subject, message=body, from_email=None, recipient_list=[address])
    return len(recipients)
