from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.test import Client

from apps.api import hot, meter
from apps.catalog.models import Dataset, Tool
from apps.keys.services import CreatedClient
from tests.conftest import Cast
from tests.keys.helpers import bearer, issue_token, make_client, reset_caches


@dataclass
class Api:
    """A calling client of Acme with a valid token, and catalog objects in Acme and in Globex."""

    http: Client
    created: CreatedClient
    token: str
    headers: dict[str, str]
    dataset: Dataset
    tool: Tool
    globex_dataset: Dataset
    globex_tool: Tool

    def post(self, path: str, body: object, **extra: str):
        return self.http.post(f"/api/v1/{path}", body, content_type="application/json", **{**self.headers, **extra})

    def get(self, path: str, **extra: str):
        return self.http.get(f"/api/v1/{path}", **{**self.headers, **extra})


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    cache.clear()
    reset_caches()
    hot.clear()
    meter.forget_leases()
    yield
    hot.clear()
    meter.forget_leases()
    reset_caches()


@pytest.fixture
def api(cast: Cast) -> Api:
    created = make_client(tenant=cast.acme, builtin_role="developer")
    token = issue_token(created)
    # A fresh bucket for each test's client (ids are unique, but be explicit about the state).
    meter.client().delete(meter.BUCKET_PREFIX + created.client.client_id)
    return Api(
        http=Client(),
        created=created,
        token=token,
        headers=bearer(token),
        dataset=Dataset.objects.create(tenant=cast.acme, name="orders", classification="internal"),
        tool=Tool.objects.create(
            tenant=cast.acme,
            name="web-search",
            allowlisted=True,
            args_schema={"type": "object", "properties": {"q": {"type": "string"}}, "additionalProperties": False},
            egress_allowlist=["api.example.com"],
            output_cap_bytes=100,
        ),
        globex_dataset=Dataset.objects.create(tenant=cast.globex, name="globex-secrets", classification="internal"),
        globex_tool=Tool.objects.create(tenant=cast.globex, name="globex-tool", allowlisted=True),
    )
