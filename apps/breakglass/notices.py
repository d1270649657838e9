"""Break-glass e-mails: who hears about an elevation event, and the message (the notify task's step)."""

from __future__ import annotations

from django.core.mail import send_mail

from apps.breakglass.models import Approval, Elevation
from apps.breakglass.services import NOTICES, may_approve
from apps.tenants.models import Membership


def approver_candidates(*, elevation: Elevation) -> list[Membership]:
    """Active members who may decide ``elevation`` now (not the requester)."""
    members = (
        Membership.objects.for_tenant(elevation.tenant_id)
        .filter(status=Membership.Status.ACTIVE)
        .exclude(pk=elevation.requester_id)
        .select_related("tenant", "user")
    )
    return [m for m in members if may_approve(policy=elevation.policy, membership=m)]


def notice_send(*, elevation_id: int, event: str) -> int:
    """Send ``event``'s e-mail: approvers for a request; requester and approvers afterwards. Returns how many."""
    if event not in NOTICES:
        raise ValueError(f"unknown break-glass notice: {event}")
    elevation = (
        Elevation.objects.filter(pk=elevation_id).select_related("policy__tenant", "role", "requester__user").first()
    )
    if elevation is None:
        return 0
    if event == "requested":
        recipients = [m.user.email for m in approver_candidates(elevation=elevation)]
    else:
        deciders = Approval.objects.for_tenant(elevation.tenant_id).filter(elevation=elevation)
        deciders = deciders.exclude(approver=None).select_related("approver__user")
        recipients = [elevation.requester_address, *(a.approver_address for a in deciders)]
    until = f"{elevation.expires_at:%H:%M} UTC" if elevation.expires_at else ""
    subject = NOTICES[event].format(
        id=elevation.pk, role=elevation.role.name, member=elevation.requester_address, until=until
    )
    body = (
        f"{subject}.\n\nTenant: {elevation.policy.tenant.name}\nPolicy: {elevation.policy.name}\n"
        f"Justification: {elevation.justification}\nIncident: {elevation.incident_ref or '-'}\n"
    )
    sent = 0
    for address in dict.fromkeys(a for a in recipients if a):
        send_mail(subject=subject, message=body, from_email=None, recipient_list=[address])
        sent += 1
    return sent
