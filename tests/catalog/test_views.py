"""Catalog console pages: the permission contract, tenant isolation, forms and flat lists."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.catalog.models import AIModel, Dataset, Tool
from tests.catalog.factories import AIModelFactory, DatasetFactory, ToolFactory
from tests.contract import PageContract, PermissionContract, Ref, form_page

pytestmark = pytest.mark.django_db

DATASET_POST = {"name": "contract-data", "classification": "public", "tags": "contract"}
TOOL_POST = {
    "name": "contract_tool",
    "description": "Registered by the permission contract",
    "args_schema": json.dumps({"type": "object"}),
    "egress_allowlist": "api.example.com",
    "output_cap_bytes": "65536",
    "args_cap_bytes": "",
    "risk_level": "low",
}
MODEL_POST = {
    "provider": "openai",
    "model_name": "contract-model",
    "price_per_1k_input": "0",
    "price_per_1k_output": "0",
}


def _pages(kind: str, read: str, manage: str, data: dict[str, str], *, detail: bool = True) -> list[PageContract]:
    """The list, create, edit (and detail, delete) pages of ``kind``; Globex's row of that kind is the attacker's id."""
    row: dict[str, Any] = {"kwargs": {"pk": Ref(kind)}, "foreign": ({"pk": Ref(f"foreign_{kind}")},)}
    pages = [
        PageContract(f"catalog:{kind}_list", read),
        *form_page(f"catalog:{kind}_create", manage, data=data),
        *form_page(f"catalog:{kind}_update", manage, data=data, **row),
    ]
    if detail:
        pages += [
            PageContract(f"catalog:{kind}_detail", read, **row),
            *form_page(f"catalog:{kind}_delete", manage, data={}, **row),
        ]
    else:  # models are switched on and off rather than deleted
        pages += [
            PageContract(f"catalog:model_{verb}", manage, method="post", ok_status=302, **row)
            for verb in ("enable", "disable")
        ]
    return pages


class TestCatalogPagesContract(PermissionContract):
    """Anonymous → sign-in, outsiders → 404, no permission → 403, holders → the page, Globex's ids → 404.

    The lists and detail pages of datasets and tools are ``any_object`` pages: a member
    without the permission tenant-wide and without an object grant is refused (object
    grants are tested in test_object_grant_pages.py).
    """

    app_namespace = "catalog"
    contracts = (
        *_pages("dataset", "dataset.read", "dataset.manage", DATASET_POST),
        *_pages("tool", "tool.execute", "tool.manage", TOOL_POST),
        *_pages("model", "model.use", "tool.manage", MODEL_POST, detail=False),
    )

    @pytest.fixture
    def contract_world(self, rows):
        return rows

    def state(self, world):
        """The audit log and every catalog row of both tenants, as they are."""
        return (
            super().state(world),
            tuple(Dataset.objects.order_by("pk").values_list("pk", "tenant_id", "name", "classification", "tags")),
            tuple(Tool.objects.order_by("pk").values_list("pk", "tenant_id", "name", "risk_level", "egress_allowlist")),
            tuple(AIModel.objects.order_by("pk").values_list("pk", "tenant_id", "model_name", "enabled")),
        )


def test_dataset_create_edit_delete(cast, client_for) -> None:
    client = client_for(cast.admin)
    response = client.post(
        reverse("catalog:dataset_create", kwargs={"tenant_slug": "acme"}),
        {
            "name": "Customers",
            "classification": "confidential",
            "contains_personal_data": "on",
            "owner": cast.member.pk,
            "tags": "PII, crm",
            "description": "CRM export",
        },
    )
    dataset = Dataset.objects.for_tenant(cast.acme).get(name="Customers")
    assert response.status_code == 302
    assert response["Location"] == f"/t/acme/catalog/datasets/{dataset.pk}/"
    assert (dataset.tags, dataset.owner_id, dataset.contains_personal_data) == (["pii", "crm"], cast.member.pk, True)

    edit_url = reverse("catalog:dataset_update", kwargs={"tenant_slug": "acme", "pk": dataset.pk})
    assert b"pii, crm" in client.get(edit_url).content
    response = client.post(edit_url, {"name": "Customers", "classification": "restricted", "tags": "pii"})
    assert response.status_code == 302
    dataset.refresh_from_db()
    assert (dataset.classification, dataset.owner_id, dataset.contains_personal_data) == ("restricted", None, False)

    delete_url = reverse("catalog:dataset_delete", kwargs={"tenant_slug": "acme", "pk": dataset.pk})
    assert client.post(delete_url).status_code == 302
    assert not Dataset.objects.for_tenant(cast.acme).exists()
    actions = AuditEvent.objects.for_tenant(cast.acme).filter(action__startswith="dataset.")
    assert sorted(actions.values_list("action", flat=True)) == ["dataset.create", "dataset.delete", "dataset.update"]


def test_dataset_form_errors_are_plain_and_nothing_is_saved(cast, rows, client_for) -> None:
    response = client_for(cast.admin).post(
        reverse("catalog:dataset_create", kwargs={"tenant_slug": "acme"}),
        {"name": "customers", "classification": "internal", "owner": cast.outsider.pk, "tags": "ok, not ok"},
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Nothing was saved" in body
    assert "Select a valid choice" in body  # the outsider is not an option
    assert Dataset.objects.for_tenant(cast.acme).count() == 1


def test_dataset_name_clash_is_reported_on_the_field(cast, rows, client_for) -> None:
    response = client_for(cast.admin).post(
        reverse("catalog:dataset_create", kwargs={"tenant_slug": "acme"}),
        {"name": "customers", "classification": "internal", "tags": "ok, not ok!"},
    )
    body = response.content.decode()
    assert "A dataset named “customers” already exists." in body
    assert "is not a valid tag" in body


def _tool_post(**overrides) -> dict:
    data = {
        "name": "web_search",
        "description": "Search the web",
        "args_schema": json.dumps({"type": "object", "properties": {"q": {"type": "string"}}}),
        "egress_allowlist": "api.example.com\n*.example.org",
        "output_cap_bytes": "65536",
        "args_cap_bytes": "",
        "risk_level": "high",
        "allowlisted": "on",
    }
    data.update(overrides)
    return data


def test_tool_create_and_detail_show_the_guardrails(cast, client_for) -> None:
    client = client_for(cast.admin)
    response = client.post(reverse("catalog:tool_create", kwargs={"tenant_slug": "acme"}), _tool_post())
    assert response.status_code == 302
    tool = Tool.objects.for_tenant(cast.acme).get(name="web_search")
    assert tool.egress_allowlist == ["api.example.com", "*.example.org"]
    body = client.get(response["Location"]).content.decode()
    assert '<pre class="json">{\n  &quot;type&quot;: &quot;object&quot;' in body
    assert "<code>*.example.org</code>" in body
    assert "64.0\xa0KB" in body
    assert "High" in body


@pytest.mark.parametrize(
    ("schema_text", "message"),
    [
        (
            '{"type": "object",}',
            "Not valid JSON: Expecting property name enclosed in double quotes (line 1, column 19).",
        ),
        (
            '{"type": "strnig"}',
            "Not a valid JSON Schema: &#x27;strnig&#x27; is not valid under any of the given schemas",
        ),
        ('{"type": "strnig"}', "(at $.type)"),
        ('{"$ref": "https://evil.example/s.json"}', "only local references"),
        ("[]", "must be a JSON object"),
    ],
)
def test_tool_schema_errors_show_the_message_and_path(cast, client_for, schema_text, message) -> None:
    response = client_for(cast.admin).post(
        reverse("catalog:tool_create", kwargs={"tenant_slug": "acme"}), _tool_post(args_schema=schema_text)
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert message in body
    assert "Nothing was saved" in body
    assert not Tool.objects.for_tenant(cast.acme).exists()


def test_tool_allowlist_errors_name_each_bad_line(cast, client_for) -> None:
    response = client_for(cast.admin).post(
        reverse("catalog:tool_create", kwargs={"tenant_slug": "acme"}),
        _tool_post(egress_allowlist="https://api.example.com/\nok.example.com\n10.0.0.1:99999"),
    )
    body = response.content.decode()
    assert "“https://api.example.com/” must be a host name without a scheme" in body
    assert "“10.0.0.1:99999” has an invalid port" in body
    assert not Tool.objects.for_tenant(cast.acme).exists()


def test_tool_edit_keeps_the_schema_round_trip(cast, rows, client_for) -> None:
    client = client_for(cast.admin)
    url = reverse("catalog:tool_update", kwargs={"tenant_slug": "acme", "pk": rows.tool.pk})
    form = client.get(url).context["form"]
    data = {k: v for k, v in form.initial.items() if v is not None}
    data["allowlisted"] = ""
    assert client.post(url, data).status_code == 302
    rows.tool.refresh_from_db()
    assert rows.tool.allowlisted is False
    (event,) = AuditEvent.objects.for_tenant(cast.acme).filter(action="tool.update")
    assert set(event.metadata["changes"]) == {"allowlisted"}


def test_models_register_enable_and_disable(cast, client_for) -> None:
    client = client_for(cast.admin)
    response = client.post(
        reverse("catalog:model_create", kwargs={"tenant_slug": "acme"}),
        {
            "provider": "anthropic",
            "model_name": "claude-sonnet-4",
            "price_per_1k_input": "0.003",
            "price_per_1k_output": "0.015",
        },
    )
    assert response.status_code == 302
    model = AIModel.objects.for_tenant(cast.acme).get()
    assert model.enabled is False
    client.post(reverse("catalog:model_enable", kwargs={"tenant_slug": "acme", "pk": model.pk}))
    model.refresh_from_db()
    assert model.enabled is True
    client.post(reverse("catalog:model_disable", kwargs={"tenant_slug": "acme", "pk": model.pk}))
    model.refresh_from_db()
    assert model.enabled is False
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="model.update").count() == 2


def test_negative_prices_are_refused(cast, client_for) -> None:
    response = client_for(cast.admin).post(
        reverse("catalog:model_create", kwargs={"tenant_slug": "acme"}),
        {"provider": "openai", "model_name": "gpt-4o", "price_per_1k_input": "-1", "price_per_1k_output": "0"},
    )
    assert "greater than or equal to 0" in response.content.decode()
    assert not AIModel.objects.for_tenant(cast.acme).exists()


def test_members_see_lists_without_manage_buttons(cast, rows, client_for) -> None:
    client = client_for(cast.member)
    datasets = client.get(reverse("catalog:dataset_list", kwargs={"tenant_slug": "acme"})).content.decode()
    assert "customers" in datasets
    assert "New dataset" not in datasets
    assert (
        "Register tool" not in client.get(reverse("catalog:tool_list", kwargs={"tenant_slug": "acme"})).content.decode()
    )
    models = client.get(reverse("catalog:model_list", kwargs={"tenant_slug": "acme"})).content.decode()
    assert "gpt-4o-mini" in models
    assert "/disable/" not in models
    assert "Register model" not in models
    assert "New dataset" in client_for(cast.admin).get("/t/acme/catalog/datasets/").content.decode()


def test_list_filters_and_bad_filter_values(cast, client_for) -> None:
    DatasetFactory(tenant=cast.acme, name="open-data", classification="public")
    DatasetFactory(tenant=cast.acme, name="payroll", classification="confidential", contains_personal_data=True)
    ToolFactory(tenant=cast.acme, name="shell", risk_level="high")
    ToolFactory(tenant=cast.acme, name="clock", risk_level="low")
    client = client_for(cast.member)
    body = client.get("/t/acme/catalog/datasets/?classification=confidential").content.decode()
    assert "payroll" in body
    assert "open-data" not in body
    body = client.get("/t/acme/catalog/datasets/?personal_data=no").content.decode()
    assert "open-data" in body
    assert "payroll" not in body
    body = client.get("/t/acme/catalog/tools/?risk_level=high").content.decode()
    assert "shell" in body
    assert "clock" not in body
    response = client.get("/t/acme/catalog/datasets/?classification=<script>")
    assert response.status_code == 200
    assert "Some filters were not understood" in response.content.decode()
    assert "<script>" not in response.content.decode()


def test_htmx_gets_only_the_results_partial(cast, rows, client_for) -> None:
    response = client_for(cast.member).get("/t/acme/catalog/tools/?risk_level=medium", HTTP_HX_REQUEST="true")
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="results">')
    assert "<html" not in body
    assert "web_search" in body
    assert "HX-Request" in response["Vary"]


def test_lists_paginate(cast, client_for) -> None:
    DatasetFactory.create_batch(30, tenant=cast.acme)
    client = client_for(cast.member)
    first = client.get("/t/acme/catalog/datasets/").content.decode()
    assert "Page 1 of 2" in first
    assert "dataset-" in first
    second = client.get("/t/acme/catalog/datasets/?page=2").content.decode()
    assert "Page 2 of 2" in second
    assert client.get("/t/acme/catalog/datasets/?page=zzz").status_code == 200


@pytest.mark.parametrize(
    ("path", "factory"),
    [
        ("/t/acme/catalog/datasets/", lambda t, n: DatasetFactory.create_batch(n, tenant=t)),
        ("/t/acme/catalog/tools/", lambda t, n: ToolFactory.create_batch(n, tenant=t)),
        ("/t/acme/catalog/models/", lambda t, n: AIModelFactory.create_batch(n, tenant=t)),
    ],
)
@pytest.mark.parametrize("role", ["admin", "member"])
def test_list_query_count_is_flat(cast, client_for, path, factory, role) -> None:
    client = client_for(getattr(cast, role))
    owner_set = [DatasetFactory(tenant=cast.acme, owner=cast.member)] if "datasets" in path else []
    factory(cast.acme, 1)

    def queries() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(path).status_code == 200
        return len(ctx.captured_queries)

    queries()  # warm the per-process caches (permission sets, content types)
    few = queries()
    factory(cast.acme, 30)
    for dataset in owner_set:
        DatasetFactory.create_batch(10, tenant=cast.acme, owner=dataset.owner)
    assert queries() == few
