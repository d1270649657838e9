"""Outgoing tenant e-mail (invitations)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from apps.tenants import selectors
from apps.tenants.invitations import INVITATION_MAX_AGE, invitation_token


def send_invitation(*, membership_id: int) -> bool:
    """Send the invitation e-mail with a fresh signed link.

    Returns False (and sends nothing) if the membership is gone or no longer an
    open invitation. SMTP errors propagate so the task can retry.
    """
    membership = selectors.membership_for_invitation_email(membership_id=membership_id)
    if membership is None:
        return False
    url = settings.SITE_URL.rstrip("/") + reverse("invitations:accept", args=[invitation_token(membership)])
    context = {
        "membership": membership,
        "tenant": membership.tenant,
        "url": url,
        "valid_days": INVITATION_MAX_AGE // (24 * 3600),
    }
    send_mail(
        subject=f"You are invited to {membership.tenant.name} on Bastion",
        message=render_to_string("tenants/email/invitation.txt", context),
        from_email=None,
        recipient_list=[membership.user.email],
    )
    return True
