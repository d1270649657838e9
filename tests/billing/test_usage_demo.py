"""The demo seed's metering part: two weeks of Acme usage, rolled up, and budgets; idempotent."""

from __future__ import annotations

from apps.access.services import builtin_roles_seed
from apps.audit.models import AuditEvent
from apps.billing.models import Budget, UsageDaily, UsageEvent
from apps.platform.management.demo_metering import seed_metering
from tests.billing.metering_helpers import _clean_budget_counters  # noqa: F401


def test_seed_has_usage_rollups_and_budgets(cast, client_for, django_capture_on_commit_callbacks) -> None:
    builtin_roles_seed(tenant=cast.acme)
    with django_capture_on_commit_callbacks(execute=False):
        assert seed_metering()
    assert UsageEvent.objects.for_tenant(cast.acme).filter(status="accepted").count() == 28
    assert UsageDaily.objects.for_tenant(cast.acme).count() >= 14
    assert sorted(Budget.objects.for_tenant(cast.acme).values_list("name", flat=True)) == [
        "Acme monthly",
        "Analysts",
        "Support bot",
    ]
    assert AuditEvent.objects.filter(action="budget.create", tenant_id=cast.acme.pk).count() == 3
    assert "openai/gpt-4o-mini" in client_for(cast.owner).get("/t/acme/billing/usage/").content.decode()
    assert "Support bot" in client_for(cast.owner).get("/t/acme/billing/budgets/").content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        assert seed_metering() == []  # idempotent
    assert UsageEvent.objects.count() == 28
