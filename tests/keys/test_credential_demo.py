"""The demo seed gives Acme provider credentials, exactly one overdue, idempotently and through the services."""

from __future__ import annotations

from pathlib import Path

import pytest

from apps.audit.models import AuditEvent
from apps.keys.models import Credential
from apps.platform.management import demo_credentials
from apps.platform.management.commands import seed_demo
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_seed_demo_calls_the_credentials_seed():
    source = Path(seed_demo.__file__).read_text(encoding="utf-8")
    assert "demo_credentials.seed_credentials()" in source


def test_demo_credentials_one_overdue_idempotent(settings):
    settings.VAULT_ADDR = ""  # no vault: env:// and vault:// references are stored, nothing is contacted
    acme = TenantFactory(slug="acme", name="Acme Corp")
    TenantFactory(slug="globex", name="Globex")
    for email, role in (("admin@acme.example", "admin"), ("dev@acme.example", "developer")):
        MembershipFactory(tenant=acme, user=UserFactory(email=email), role=role)
    created = demo_credentials.seed_credentials()
    assert len(created) == 4
    credentials = list(Credential.objects.filter(tenant=acme).select_related("owner__user"))
    assert [c.name for c in credentials if c.due_state == "overdue"] == ["OpenAI – support assistant"]
    assert sum(c.due_state == "soon" for c in credentials) == 1
    assert {c.owner.user.email for c in credentials if c.owner} == {"admin@acme.example", "dev@acme.example"}
    assert not Credential.objects.exclude(tenant=acme).exists()
    events = AuditEvent.objects.filter(action="credential.created", tenant=acme)
    assert events.count() == 4
    assert set(events.values_list("actor_display", flat=True)) == {"admin@acme.example"}
    assert demo_credentials.seed_credentials() == []
    assert Credential.objects.count() == 4
