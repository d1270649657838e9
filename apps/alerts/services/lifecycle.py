"""An alert's lifecycle: open → acknowledged → resolved (or open → resolved), audited.

Each step is a conditional UPDATE on the current status, so two people
clicking at once produce one transition and one audit event; the second gets
a ValidationError saying what happened meanwhile. A resolved alert stays
resolved: the next anomaly on the rule opens a new alert.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.alerts.models import Alert
from apps.audit.services import Actor, record
from apps.tenants.models import Membership


def _transition(alert: Alert, *, allowed_from: tuple[str, ...], actor: Membership, **fields: object) -> Alert:
    changed = Alert.objects.for_tenant(alert.tenant_id).filter(pk=alert.pk, status__in=allowed_from).update(**fields)
    fresh = Alert.objects.for_tenant(alert.tenant_id).get(pk=alert.pk)
    if not changed:
        raise ValidationError(f"This alert is already {fresh.get_status_display().lower()}.")
    return fresh


@transaction.atomic
def alert_acknowledge(*, alert: Alert, actor: Membership) -> Alert:
    """Someone is on it: notifications stop (they only go out when an alert opens); it stays de-duplicated."""
    fresh = _transition(
        alert,
        allowed_from=(Alert.Status.OPEN,),
        actor=actor,
        status=Alert.Status.ACKNOWLEDGED,
        acknowledged_at=timezone.now(),
        acknowledged_by=actor,
    )
    record("alert.acknowledge", tenant=fresh.tenant_id, actor=Actor.for_user(actor.user), target=fresh)
    return fresh


@transaction.atomic
def alert_resolve(*, alert: Alert, actor: Membership) -> Alert:
    """Close the alert; the rule can raise a new one from the next evaluation on."""
    fresh = _transition(
        alert,
        allowed_from=(Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED),
        actor=actor,
        status=Alert.Status.RESOLVED,
        resolved_at=timezone.now(),
        resolved_by=actor,
    )
    record("alert.resolve", tenant=fresh.tenant_id, actor=Actor.for_user(actor.user), target=fresh)
    return fresh
