"""Evaluation cost on a tenant with 100,000 usage events over two days, 20 clients, five baseline rules.

Run: DATABASE_URL=… .venv/bin/python manage.py shell < benchmarks/bench_alerts.py
(creates a tenant "benchalerts" once in that database; not a pytest module).
"""

import time
from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from apps.alerts.models import Metric
from apps.alerts.services import evaluation, fraud, rules
from apps.billing.models import UsageEvent
from apps.keys.services import apiclient_create
from apps.tenants.models import Tenant

t, _ = Tenant.objects.get_or_create(slug="benchalerts", defaults={"name": "Bench"})
if not UsageEvent.objects.for_tenant(t).exists():
    clients = [apiclient_create(tenant=t, name=f"c{i}", builtin_role="developer", role=None).client for i in range(20)]
    now = timezone.now()
    rows = []
    for i in range(100_000):
        at = now - timedelta(seconds=(i * 86400 * 2) // 100_000)
        rows.append(
            UsageEvent(
                tenant=t,
                client=clients[i % 20],
                model_name="m",
                input_tokens=500,
                output_tokens=200,
                context_tokens=800,
                tool_calls=["search"] if i % 3 == 0 else [],
                cost=Decimal("0.002"),
                currency="EUR",
                prompt_hash=f"h{i % 5000}",
                idempotency_key=f"b{i}",
                occurred_at=at,
                received_at=at,
            )
        )
    UsageEvent.objects.bulk_create(rows, batch_size=5000)
    for m in Metric.values:
        rules.rule_create(tenant=t, actor=None, name=m, metric=m, mode="baseline", min_volume=10)
for label in ("first run (catch-up of 24 h per rule)", "steady run"):
    t0 = time.perf_counter()
    for rid in evaluation.tenant_rule_ids(tenant_id=t.pk):
        evaluation.rule_evaluate(rule_id=rid)
    t1 = time.perf_counter()
    fraud.tenant_screen(tenant_id=t.pk)
    t2 = time.perf_counter()
    print(f"{label}: 5 rules {1000 * (t1 - t0):.0f} ms, fraud screening {1000 * (t2 - t1):.0f} ms")
