"""Catalog fixtures shared by the catalog and guardrails tests: memberships and rows in both tenants."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apps.catalog.models import AIModel, Dataset, Tool
from apps.tenants.models import Membership
from tests.catalog.factories import AIModelFactory, DatasetFactory, ToolFactory


@pytest.fixture
def memberships(cast) -> dict[str, Membership]:
    """The Acme memberships by role."""
    return {m.role: m for m in Membership.objects.for_tenant(cast.acme).select_related("tenant", "user")}


@dataclass
class Rows:
    dataset: Dataset
    tool: Tool
    model: AIModel
    foreign_dataset: Dataset
    foreign_tool: Tool
    foreign_model: AIModel


@pytest.fixture
def rows(cast) -> Rows:
    """One dataset, tool and model in Acme and the same in Globex (the attacker's targets)."""
    return Rows(
        dataset=DatasetFactory(tenant=cast.acme, name="customers"),
        tool=ToolFactory(tenant=cast.acme, name="web_search"),
        model=AIModelFactory(tenant=cast.acme, model_name="gpt-4o-mini"),
        foreign_dataset=DatasetFactory(tenant=cast.globex, name="globex-secrets"),
        foreign_tool=ToolFactory(tenant=cast.globex, name="globex_tool"),
        foreign_model=AIModelFactory(tenant=cast.globex, model_name="globex-model"),
    )
