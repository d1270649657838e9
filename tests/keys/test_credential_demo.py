"""The demo seed gives Acme provider credentials, exactly one overdue, idempotently and through the services."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.keys.models import Credential

pytestmark = pytest.mark.django_db


def test_seed_demo_adds_credentials_with_one_overdue(settings):
    settings.VAULT_ADDR = ""  # no vault: env:// and vault:// references are stored, nothing is contacted
    call_command("seed_demo", verbosity=0)
    credentials = list(Credential.objects.filter(tenant__slug="acme"))
    assert len(credentials) == 4
    assert [c.name for c in credentials if c.due_state == "overdue"] == ["OpenAI – support assistant"]
    assert sum(c.due_state == "soon" for c in credentials) == 1
    assert not Credential.objects.exclude(tenant__slug="acme").exists()
    assert AuditEvent.objects.filter(action="credential.created").count() == 4
    call_command("seed_demo", verbosity=0)
    assert Credential.objects.count() == 4
