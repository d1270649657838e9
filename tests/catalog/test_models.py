"""Catalog tables: tenant-owned, indexes lead with tenant, and the database refuses bad rows."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from apps.catalog.models import AIModel, Dataset, Tool
from apps.tenants.models import TenantOwned
from tests.catalog.factories import AIModelFactory, DatasetFactory, ToolFactory

CATALOG_MODELS = (Dataset, Tool, AIModel)


@pytest.mark.parametrize("model", CATALOG_MODELS)
def test_catalog_models_are_tenant_owned_and_documented(model) -> None:
    assert issubclass(model, TenantOwned)
    assert model.__doc__
    assert "\n" not in model.__doc__.strip()
    assert hasattr(model.objects, "for_tenant")


@pytest.mark.parametrize("model", CATALOG_MODELS)
def test_composite_indexes_and_unique_constraints_lead_with_tenant(model) -> None:
    composite = [i.fields for i in model._meta.indexes]
    composite += [c.fields for c in model._meta.constraints if getattr(c, "fields", None)]
    assert composite
    assert all(fields[0] == "tenant" for fields in composite), composite


def _refused(factory, **kwargs) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        factory(**kwargs)


@pytest.mark.django_db
def test_the_database_refuses_what_the_services_would(cast) -> None:
    _refused(DatasetFactory, tenant=cast.acme, classification="secret")
    _refused(DatasetFactory, tenant=cast.acme, name="")
    _refused(DatasetFactory, tenant=cast.acme, tags=[f"t{i}" for i in range(21)])
    _refused(ToolFactory, tenant=cast.acme, name="no spaces")
    _refused(ToolFactory, tenant=cast.acme, risk_level="extreme")
    _refused(ToolFactory, tenant=cast.acme, output_cap_bytes=10 * 1024 * 1024 + 1)
    _refused(ToolFactory, tenant=cast.acme, args_cap_bytes=0)
    _refused(AIModelFactory, tenant=cast.acme, price_per_1k_input=-1)
    _refused(AIModelFactory, tenant=cast.acme, provider="acme-ai")
    DatasetFactory(tenant=cast.acme, name="same")
    _refused(DatasetFactory, tenant=cast.acme, name="same")
    DatasetFactory(tenant=cast.globex, name="same")
