"""Factories for catalog rows (shared by the catalog and guardrails tests)."""

from __future__ import annotations

import factory

from apps.catalog.models import AIModel, Dataset, Tool
from tests.factories import TenantFactory

SEARCH_SCHEMA = {
    "type": "object",
    "properties": {
        "url": {"type": "string"},
        "query": {
            "type": "object",
            "properties": {"text": {"type": "string"}, "limit": {"type": "integer", "minimum": 1}},
            "required": ["text"],
        },
    },
    "required": ["query"],
}


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"dataset-{n:03d}")
    classification = Dataset.Classification.INTERNAL


class ToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Tool

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"tool_{n:03d}")
    args_schema = factory.LazyFunction(lambda: dict(SEARCH_SCHEMA))
    egress_allowlist = factory.LazyFunction(lambda: ["api.example.com", "*.example.org"])
    allowlisted = True


class AIModelFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = AIModel

    tenant = factory.SubFactory(TenantFactory)
    provider = AIModel.Provider.OPENAI
    model_name = factory.Sequence(lambda n: f"gpt-test-{n:03d}")
    enabled = True
