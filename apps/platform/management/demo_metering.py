"""Demo usage and budgets for Acme (#12, items 4-6): two priced models, an API client, two weeks of usage, budgets.

Through the services, as the runtime API and a billing manager would have done
it: the usage goes through ``usage_ingest`` (priced from the catalog, stored
once per idempotency key), then the rollups are computed and the budgets
created (audited). Usage is reported before any budget exists, so seeding needs
no Redis; the budget counters are reconciled from the database when Redis
answers (otherwise the first beat run does it). Idempotent: with the "support-bot"
client there, nothing is done.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.access.selectors import role_list
from apps.billing import budgets, ledger
from apps.billing.metering import UsageIn, usage_ingest
from apps.billing.usage_rollups import usage_rollup
from apps.catalog import services as catalog_services
from apps.catalog.selectors import resource_for_decision
from apps.keys import selectors as keys_selectors
from apps.keys import services as keys_services
from apps.tenants import selectors as tenant_selectors

CLIENT = "support-bot"
MODELS = (("openai", "gpt-4o-mini", "0.15", "0.60"), ("anthropic", "claude-haiku", "0.25", "1.25"))


def seed_metering() -> list[str]:
    acme = tenant_selectors.tenant_get(slug="acme")
    if acme is None or keys_selectors.apiclient_list(tenant=acme).filter(name=CLIENT).exists():
        return []
    for provider, name, price_in, price_out in MODELS:
        if resource_for_decision(tenant=acme, kind="model", ident=f"{provider}/{name}") is None:
            try:
                catalog_services.model_create(
                    tenant=acme,
                    provider=provider,
                    model_name=name,
                    price_per_1k_input=Decimal(price_in),
                    price_per_1k_output=Decimal(price_out),
                    enabled=True,
                )
            except ValidationError:  # already registered under another spelling: keep that one
                continue
    client = keys_services.apiclient_create(tenant=acme, name=CLIENT, builtin_role="developer").client
    now = timezone.now()
    events = []
    for day in range(14):
        when = now - timedelta(days=day, hours=2)
        events.append(UsageIn(f"demo-{day}-a", "openai/gpt-4o-mini", 40_000 + 5_000 * (day % 4), 9_000, when))
        events.append(UsageIn(f"demo-{day}-b", "anthropic/claude-haiku", 20_000 + 3_000 * (day % 3), 6_000, when))
    usage_ingest(tenant=acme, client=client, events=events)
    usage_rollup()
    roles = {role.key: role for role in role_list(tenant=acme)}
    budgets.budget_create(tenant=acme, data={"name": "Acme monthly", "scope": "tenant", "amount": Decimal("500")})
    budgets.budget_create(
        tenant=acme,
        data={
            "name": "Support bot",
            "scope": "client",
            "client": client,
            "amount": Decimal("40"),
            "per_minute": Decimal("2"),
        },
    )
    if "analyst" in roles:
        budgets.budget_create(
            tenant=acme, data={"name": "Analysts", "scope": "role", "role": roles["analyst"], "amount": Decimal("25")}
        )
    with contextlib.suppress(ledger.LedgerUnavailableError):  # no Redis now: the beat's reconciliation fills them
        budgets.budgets_reconcile()
    return [f"acme: API client {CLIENT}, {len(events)} usage events over 14 days, 3 budgets"]
