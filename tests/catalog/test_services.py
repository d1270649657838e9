"""Catalog services: validate, write atomically, audit with before/after, stay inside the tenant."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from apps.audit.models import AuditEvent
from apps.catalog import services
from apps.catalog.models import AIModel, Dataset, Tool
from apps.catalog.validation import json_digest
from tests.catalog.factories import SEARCH_SCHEMA

pytestmark = pytest.mark.django_db


def _events(tenant, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.for_tenant(tenant).filter(action=action).order_by("seq"))


def test_dataset_create_normalises_validates_and_audits(cast) -> None:
    dataset = services.dataset_create(
        tenant=cast.acme,
        name="  Customers ",
        classification="confidential",
        contains_personal_data=True,
        owner=cast.member,
        tags=["PII", "crm", "pii"],
        actor=cast.admin,
    )
    assert (dataset.name, dataset.tags, dataset.owner_id) == ("Customers", ["pii", "crm"], cast.member.pk)
    (event,) = _events(cast.acme, "dataset.create")
    assert event.actor_id == str(cast.admin.pk)
    assert event.target_id == str(dataset.pk)
    assert event.metadata["classification"] == "confidential"


def test_dataset_update_records_before_and_after_of_changed_fields_only(cast) -> None:
    dataset = services.dataset_create(tenant=cast.acme, name="sales", actor=cast.admin)
    services.dataset_update(
        dataset=dataset, data={"classification": "restricted", "tags": ["q3"], "name": "sales"}, actor=cast.admin
    )
    (event,) = _events(cast.acme, "dataset.update")
    assert event.metadata["changes"] == {
        "classification": {"before": "internal", "after": "restricted"},
        "tags": {"before": [], "after": ["q3"]},
    }


def test_an_update_that_changes_nothing_writes_nothing(cast) -> None:
    dataset = services.dataset_create(tenant=cast.acme, name="sales", actor=cast.admin)
    services.dataset_update(dataset=dataset, data={"name": "sales"}, actor=cast.admin)
    assert _events(cast.acme, "dataset.update") == []


def test_dataset_names_are_unique_per_tenant_not_globally(cast) -> None:
    services.dataset_create(tenant=cast.acme, name="shared", actor=cast.admin)
    services.dataset_create(tenant=cast.globex, name="shared", actor=cast.globex_owner)
    with pytest.raises(ValidationError) as caught:
        services.dataset_create(tenant=cast.acme, name="shared", actor=cast.admin)
    assert "already exists" in caught.value.message_dict["name"][0]


def test_dataset_owner_must_be_an_active_member_of_the_tenant(cast) -> None:
    for stranger in (cast.outsider, cast.globex_owner):
        with pytest.raises(ValidationError) as caught:
            services.dataset_create(tenant=cast.acme, name=f"x-{stranger.pk}", owner=stranger)
        assert "active member" in caught.value.message_dict["owner"][0]


def test_every_problem_is_reported_at_once_and_nothing_is_saved(cast) -> None:
    with pytest.raises(ValidationError) as caught:
        services.dataset_create(
            tenant=cast.acme, name="", classification="top-secret", tags=["bad tag"], owner=cast.outsider
        )
    assert set(caught.value.message_dict) == {"name", "classification", "tags", "owner"}
    assert not Dataset.objects.for_tenant(cast.acme).exists()
    assert _events(cast.acme, "dataset.create") == []


def test_dataset_delete_audits_what_it_was(cast) -> None:
    dataset = services.dataset_create(tenant=cast.acme, name="old", actor=cast.admin)
    pk = dataset.pk
    services.dataset_delete(dataset=dataset, actor=cast.admin)
    assert not Dataset.objects.for_tenant(cast.acme).filter(pk=pk).exists()
    (event,) = _events(cast.acme, "dataset.delete")
    assert (event.target_type, event.target_id, event.metadata["name"]) == ("dataset", str(pk), "old")


def test_unknown_update_fields_are_a_programming_error(cast) -> None:
    dataset = services.dataset_create(tenant=cast.acme, name="x", actor=cast.admin)
    with pytest.raises(TypeError):
        services.dataset_update(dataset=dataset, data={"tenant": cast.globex})


def test_tool_create_canonicalises_the_allowlist_and_audits_a_schema_digest(cast) -> None:
    tool = services.tool_create(
        tenant=cast.acme,
        name="web_search",
        args_schema=SEARCH_SCHEMA,
        egress_allowlist=["API.Example.com", "*.Bücher.example", "api.example.com"],
        actor=cast.admin,
    )
    assert tool.egress_allowlist == ["api.example.com", "*.xn--bcher-kva.example"]
    assert tool.allowlisted is False  # deny by default
    (event,) = _events(cast.acme, "tool.create")
    assert event.metadata["args_schema"] == json_digest(SEARCH_SCHEMA)
    assert "properties" not in str(event.metadata)


@pytest.mark.parametrize(
    ("field", "kwargs", "complaint"),
    [
        ("args_schema", {"args_schema": {"type": "strnig"}}, "'strnig' is not valid"),
        ("args_schema", {"args_schema": {"$ref": "https://evil.example/s.json"}}, "only local references"),
        ("egress_allowlist", {"egress_allowlist": ["https://api.example.com/"]}, "without a scheme"),
        ("output_cap_bytes", {"output_cap_bytes": 10 * 1024 * 1024 + 1}, "less than or equal to"),
        ("output_cap_bytes", {"output_cap_bytes": 0}, "greater than or equal to 1"),
        ("args_cap_bytes", {"args_cap_bytes": 2 * 1024 * 1024}, "less than or equal to"),
        ("risk_level", {"risk_level": "extreme"}, "not a valid choice"),
        ("name", {"name": "has spaces"}, "letters, digits"),
    ],
)
def test_tool_create_refuses_bad_input_with_the_field_named(cast, field, kwargs, complaint) -> None:
    arguments = {"name": "ok_tool", "args_schema": {"type": "object"}, **kwargs}
    with pytest.raises(ValidationError) as caught:
        services.tool_create(tenant=cast.acme, actor=cast.admin, **arguments)
    assert complaint in " ".join(caught.value.message_dict[field])
    assert not Tool.objects.for_tenant(cast.acme).exists()


def test_tool_update_diffs_the_schema_by_digest(cast) -> None:
    tool = services.tool_create(tenant=cast.acme, name="t", args_schema={"type": "object"}, actor=cast.admin)
    services.tool_update(
        tool=tool, data={"args_schema": SEARCH_SCHEMA, "allowlisted": True, "risk_level": "high"}, actor=cast.admin
    )
    (event,) = _events(cast.acme, "tool.update")
    changes = event.metadata["changes"]
    assert changes["args_schema"]["after"] == json_digest(SEARCH_SCHEMA)
    assert changes["allowlisted"] == {"before": False, "after": True}
    assert changes["risk_level"] == {"before": "medium", "after": "high"}


def test_a_failed_tool_update_leaves_the_row_and_log_untouched(cast) -> None:
    tool = services.tool_create(tenant=cast.acme, name="t", args_schema={"type": "object"}, actor=cast.admin)
    with pytest.raises(ValidationError):
        services.tool_update(tool=tool, data={"allowlisted": True, "args_schema": {"type": 5}}, actor=cast.admin)
    tool.refresh_from_db()
    assert tool.allowlisted is False
    assert _events(cast.acme, "tool.update") == []


def test_tool_delete_is_audited(cast) -> None:
    tool = services.tool_create(tenant=cast.acme, name="t", args_schema={"type": "object"}, actor=cast.admin)
    services.tool_delete(tool=tool, actor=cast.admin)
    assert [e.metadata["name"] for e in _events(cast.acme, "tool.delete")] == ["t"]


def test_models_are_created_disabled_and_toggled_with_an_audit_trail(cast) -> None:
    model = services.model_create(
        tenant=cast.acme, provider="anthropic", model_name="claude-sonnet-4", price_per_1k_input=Decimal("0.003")
    )
    assert model.enabled is False
    services.model_update(model=model, data={"enabled": True, "price_per_1k_input": Decimal("0.0030")})
    (event,) = _events(cast.acme, "model.update")
    assert event.metadata["changes"] == {"enabled": {"before": False, "after": True}}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"price_per_1k_input": Decimal("-0.01")}, "price_per_1k_input"),
        ({"price_per_1k_output": Decimal("0.0000001")}, "price_per_1k_output"),
        ({"provider": "acme-ai"}, "provider"),
        ({"model_name": "has space"}, "model_name"),
    ],
)
def test_model_create_refuses_bad_input(cast, kwargs, field) -> None:
    arguments = {"provider": "openai", "model_name": "gpt-4o", **kwargs}
    with pytest.raises(ValidationError) as caught:
        services.model_create(tenant=cast.acme, **arguments)
    assert field in caught.value.message_dict
    assert not AIModel.objects.for_tenant(cast.acme).exists()


def test_the_same_model_twice_is_refused_per_tenant(cast) -> None:
    services.model_create(tenant=cast.acme, provider="openai", model_name="gpt-4o")
    services.model_create(tenant=cast.globex, provider="openai", model_name="gpt-4o")
    services.model_create(tenant=cast.acme, provider="azure-openai", model_name="gpt-4o")
    with pytest.raises(ValidationError, match="already registered"):
        services.model_create(tenant=cast.acme, provider="openai", model_name="gpt-4o")
