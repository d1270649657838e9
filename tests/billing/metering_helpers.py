"""Shared setup for the metering, budget and reservation tests: a priced model, budgets, clean Redis counters.

Import the fixtures into a test module (``from tests.billing.metering_helpers import priced, ...``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from apps.access.models import Role
from apps.billing import budgets, ledger, metering
from apps.billing.models import Budget
from apps.catalog.models import AIModel, Tool
from apps.tenants.models import Tenant


@pytest.fixture(autouse=True)
def _clean_budget_counters() -> None:
    """Budget ids restart with a fresh test database; counters of an earlier run must not leak in."""
    r = ledger.client()
    for key in r.scan_iter(match=ledger.PREFIX + "*", count=1000):
        r.delete(key)
    metering._hard_alerted.clear()


@dataclass
class Priced:
    model: AIModel  # 1 EUR per 1,000 input tokens, 2 EUR per 1,000 output tokens
    risky_model: AIModel  # requires preauthorisation
    risky_tool: Tool
    globex_model: AIModel


def make_priced(tenant: Tenant, globex: Tenant) -> Priced:
    return Priced(
        model=AIModel.objects.create(
            tenant=tenant,
            provider="openai",
            model_name="gpt-test",
            price_per_1k_input=Decimal("1.000000"),
            price_per_1k_output=Decimal("2.000000"),
            enabled=True,
        ),
        risky_model=AIModel.objects.create(
            tenant=tenant,
            provider="anthropic",
            model_name="big-risky",
            price_per_1k_input=Decimal("10"),
            price_per_1k_output=Decimal("10"),
            enabled=True,
            requires_preauth=True,
        ),
        risky_tool=Tool.objects.create(tenant=tenant, name="wire-transfer", allowlisted=True, requires_preauth=True),
        globex_model=AIModel.objects.create(
            tenant=globex, provider="openai", model_name="gpt-test", price_per_1k_input=Decimal("100"), enabled=True
        ),
    )


def make_budget(tenant: Tenant, amount: str, **fields: Any) -> Budget:
    scope = fields.pop("scope", Budget.Scope.TENANT)
    return budgets.budget_create(
        tenant=tenant,
        data={
            "name": fields.pop("name", f"{scope} {uuid.uuid4().hex[:6]}"),
            "scope": scope,
            "amount": Decimal(amount),
            **fields,
        },
    )


def builtin_role(tenant: Tenant, key: str) -> Role:
    from apps.access.services import builtin_roles_seed

    found = Role.objects.for_tenant(tenant).filter(key=key, builtin=True).first()
    return found or next(role for role in builtin_roles_seed(tenant=tenant) if role.key == key)


def event(key: str, *, model: str = "openai/gpt-test", inp: int = 1000, out: int = 0, **extra: Any) -> dict[str, Any]:
    """A usage event body: by default 1,000 input tokens of the 1 EUR model = 1.000000 EUR."""
    return {
        "idempotency_key": key,
        "model": model,
        "input_tokens": inp,
        "output_tokens": out,
        "timestamp": datetime.now(UTC).isoformat(),
        **extra,
    }
