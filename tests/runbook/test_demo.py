"""The demo seed opens Acme's runbook for this quarter (open, two lines reviewed), once."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from apps.audit.models import AuditEvent
from apps.runbook.models import Runbook, RunbookItem

pytestmark = pytest.mark.django_db


def test_seed_demo_opens_an_acme_runbook(settings):
    settings.VAULT_ADDR = ""
    call_command("seed_demo", verbosity=0)
    [runbook] = Runbook.objects.filter(tenant__slug="acme")
    assert runbook.status == "open"
    items = RunbookItem.objects.filter(runbook=runbook)
    assert items.filter(checklist="rotate").exists()  # the demo credentials are due
    assert items.exclude(mark="").count() == 2
    assert items.filter(mark="").exists()  # still open for the visitor
    assert AuditEvent.objects.filter(action="runbook.item_mark", tenant__slug="acme").count() == 2
    call_command("seed_demo", verbosity=0)
    assert Runbook.objects.count() == 1
    assert not Runbook.objects.filter(tenant__slug="globex").exists()
