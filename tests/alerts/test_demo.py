"""The demo seed leaves one open alert in Acme, through the services, and is idempotent."""

from __future__ import annotations

import pytest

from apps.alerts.models import Alert, AlertRule
from apps.audit.models import AuditEvent
from apps.platform.management.demo_alerts import seed_alerts
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_seed_opens_one_alert_once(cast) -> None:
    MembershipFactory(tenant=cast.acme, user=UserFactory(email="dev@acme.example"), role="developer")
    assert seed_alerts()
    assert seed_alerts() == []
    alert = Alert.objects.for_tenant(cast.acme).get()
    assert alert.status == "open"
    assert AlertRule.objects.for_tenant(cast.acme).count() == 3
    assert AuditEvent.objects.filter(tenant=cast.acme, action="alert.open").count() == 1
    assert AuditEvent.objects.filter(tenant=cast.acme, action="alert_rule.create").count() == 3
