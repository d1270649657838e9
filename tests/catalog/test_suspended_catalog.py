"""Issue #7 item 13: a suspended tenant's catalog stays readable (read-only, not hidden).

Before the fix the catalog's visibility check asked ``authorize()`` without the
reading flag, so a suspended tenant's tool and model lists came back empty,
tool pages answered 404, and every page view wrote a denied-decision row. A
suspension must stop changes and spending, not hide what the tenant has.
"""

from __future__ import annotations

import pytest

from apps.access.models import DeniedDecision
from apps.catalog import selectors
from apps.tenants.models import Membership, Tenant

pytestmark = pytest.mark.django_db


@pytest.fixture
def suspended(cast, rows):
    Tenant.objects.filter(pk=cast.acme.pk).update(status="suspended", suspended_reason="unpaid invoice")
    cast.acme.refresh_from_db()
    return cast


def test_lists_and_pages_stay_readable_for_readers(suspended, rows, client_for) -> None:
    client = client_for(suspended.member)
    tools = client.get("/t/acme/catalog/tools/")
    assert tools.status_code == 200
    assert "web_search" in tools.content.decode()
    models = client.get("/t/acme/catalog/models/")
    assert models.status_code == 200
    assert "gpt-4o-mini" in models.content.decode()
    assert client.get(f"/t/acme/catalog/tools/{rows.tool.pk}/").status_code == 200
    datasets = client.get("/t/acme/catalog/datasets/")
    assert "customers" in datasets.content.decode()
    assert client.get(f"/t/acme/catalog/datasets/{rows.dataset.pk}/").status_code == 200
    assert not DeniedDecision.objects.for_tenant(suspended.acme).exists()


def test_the_selectors_answer_reads(suspended, rows) -> None:
    member = Membership.objects.select_related("tenant").get(tenant=suspended.acme, user=suspended.member)
    assert list(selectors.tool_list(tenant=suspended.acme, subject=member)) == [rows.tool]
    assert list(selectors.model_list(tenant=suspended.acme, subject=member)) == [rows.model]
    assert selectors.tool_get(tenant=suspended.acme, subject=member, pk=rows.tool.pk) == rows.tool
    assert not DeniedDecision.objects.for_tenant(suspended.acme).exists()


def test_writes_stay_refused(suspended, rows, client_for) -> None:
    response = client_for(suspended.admin).post(f"/t/acme/catalog/tools/{rows.tool.pk}/delete/")
    assert response.status_code == 403
    assert client_for(suspended.admin).get(f"/t/acme/catalog/tools/{rows.tool.pk}/").status_code == 200
