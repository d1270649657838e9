"""The demo seed's break-glass part (#11, item 9): the policy and one past elevation with a real history."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.access import decisions
from apps.audit.models import AuditEvent
from apps.breakglass.models import Elevation, Policy
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db


def test_seed_has_the_incident_responder_policy_and_a_past_elevation(django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=False):
        call_command("seed_demo", stdout=StringIO())
    policy = Policy.objects.get(tenant__slug="acme", name="Incident responder")
    assert (policy.approvals_required, policy.max_duration_minutes, policy.approver_roles) == (1, 120, ["owner"])
    assert policy.role.name == "Incident admin"
    assert "dataset.manage" in policy.role.permissions
    assert "member.manage" not in policy.role.permissions
    elevation = Elevation.objects.get(policy=policy)
    assert elevation.status == Elevation.Status.ENDED
    assert elevation.incident_ref == "INC-2041"
    assert elevation.requested_at < timezone.now() - timedelta(days=2)
    assert elevation.requested_at < elevation.activated_at < elevation.ended_at < elevation.expires_at
    # Its history is in the audit log, in order, and the person's work during the window too.
    actions = list(
        AuditEvent.objects.filter(tenant__slug="acme", metadata__elevation=elevation.pk)
        .order_by("occurred_at")
        .values_list("action", flat=True)
    )
    assert actions == ["breakglass.request", "breakglass.approve", "breakglass.activate", "breakglass.end"]
    during = AuditEvent.objects.filter(
        action="dataset.update", occurred_at__gt=elevation.activated_at, occurred_at__lt=elevation.ended_at
    )
    assert during.count() == 1
    dev = Membership.objects.select_related("tenant", "user").get(user__email="dev@acme.example")
    assert not decisions.can(dev, "dataset.manage")  # it ended: the rights are gone
    # Idempotent.
    call_command("seed_demo", stdout=StringIO())
    assert Elevation.objects.filter(policy__tenant__slug="acme").count() == 1
