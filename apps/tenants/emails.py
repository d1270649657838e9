"""Outgoing tenant e-mail (invitations)."""

from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.urls import reverse

from apps.tenants.models import Membership


def send_invitation(*, membership_id: int) -> None:
    from apps.tenants.services import invitation_token

    membership = Membership.objects.select_related("tenant", "user", "invited_by").get(pk=membership_id)
    url = settings.SITE_URL.rstrip("/") + reverse("invitations:accept", args=[invitation_token(membership)])
    context = {"membership": membership, "tenant": membership.tenant, "url": url}
    send_mail(
        subject=f"You are invited to {membership.tenant.name} on Bastion",
        message=render_to_string("tenants/email/invitation.txt", context),
        from_email=None,
        recipient_list=[membership.user.email],
    )
