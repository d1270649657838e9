"""Catalog selectors: scoped to one tenant, filtered through authorize(), flat in queries."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.catalog import selectors
from apps.tenants.models import Membership
from tests.catalog.factories import DatasetFactory, ToolFactory

pytestmark = pytest.mark.django_db


def test_lists_never_contain_another_tenants_rows(cast, rows, memberships) -> None:
    owner = memberships["owner"]
    assert list(selectors.dataset_list(tenant=cast.acme, subject=owner)) == [rows.dataset]
    assert list(selectors.tool_list(tenant=cast.acme, subject=owner)) == [rows.tool]
    assert list(selectors.model_list(tenant=cast.acme, subject=owner)) == [rows.model]


def test_gets_of_another_tenants_ids_find_nothing(cast, rows, memberships) -> None:
    owner = memberships["owner"]
    assert selectors.dataset_get(tenant=cast.acme, subject=owner, pk=rows.foreign_dataset.pk) is None
    assert selectors.tool_get(tenant=cast.acme, subject=owner, pk=rows.foreign_tool.pk) is None
    assert selectors.model_get(tenant=cast.acme, subject=owner, pk=rows.foreign_model.pk) is None
    assert selectors.dataset_get(tenant=cast.acme, subject=owner, pk=rows.dataset.pk) == rows.dataset


def test_a_subject_sees_only_what_it_may_read(cast, rows, memberships) -> None:
    viewer, member = memberships["viewer"], memberships["member"]
    assert list(selectors.dataset_list(tenant=cast.acme, subject=viewer)) == []
    assert list(selectors.tool_list(tenant=cast.acme, subject=viewer)) == []
    assert list(selectors.model_list(tenant=cast.acme, subject=viewer)) == []
    assert selectors.dataset_get(tenant=cast.acme, subject=viewer, pk=rows.dataset.pk) is None
    assert selectors.tool_get(tenant=cast.acme, subject=viewer, pk=rows.tool.pk) is None
    assert list(selectors.dataset_list(tenant=cast.acme, subject=member)) == [rows.dataset]
    assert selectors.dataset_get(tenant=cast.acme, subject=member, pk=rows.dataset.pk, action="dataset.manage") is None


def test_a_disabled_membership_sees_nothing(cast, rows, memberships) -> None:
    admin = memberships["admin"]
    admin.status = Membership.Status.DISABLED
    assert list(selectors.dataset_list(tenant=cast.acme, subject=admin)) == []


def test_a_membership_of_another_tenant_sees_nothing(cast, rows) -> None:
    globex_owner = Membership.objects.for_tenant(cast.globex).get(user=cast.globex_owner)
    assert list(selectors.dataset_list(tenant=cast.acme, subject=globex_owner)) == []
    assert selectors.tool_get(tenant=cast.acme, subject=globex_owner, pk=rows.tool.pk) is None


def test_filters(cast, memberships) -> None:
    DatasetFactory(tenant=cast.acme, name="a", classification="restricted", contains_personal_data=True)
    DatasetFactory(tenant=cast.acme, name="b", classification="public")
    ToolFactory(tenant=cast.acme, name="hi", risk_level="high", allowlisted=False)
    ToolFactory(tenant=cast.acme, name="lo", risk_level="low")
    owner = memberships["owner"]
    restricted = selectors.dataset_list(tenant=cast.acme, subject=owner, classification="restricted")
    assert [d.name for d in restricted] == ["a"]
    assert [d.name for d in selectors.dataset_list(tenant=cast.acme, subject=owner, personal_data=False)] == ["b"]
    assert [t.name for t in selectors.tool_list(tenant=cast.acme, subject=owner, risk_level="high")] == ["hi"]
    assert [t.name for t in selectors.tool_list(tenant=cast.acme, subject=owner, allowlisted=True)] == ["lo"]


def test_list_queries_do_not_grow_with_rows(cast, memberships) -> None:
    owner = memberships["owner"]

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            [d.owner for d in selectors.dataset_list(tenant=cast.acme, subject=owner)]
            list(selectors.tool_list(tenant=cast.acme, subject=owner))
        return len(ctx.captured_queries)

    DatasetFactory(tenant=cast.acme, owner=cast.member)
    count()  # loads and memoises the permission set, as tenant_view does before any view runs
    few = count()
    DatasetFactory.create_batch(20, tenant=cast.acme, owner=cast.member)
    ToolFactory.create_batch(20, tenant=cast.acme)
    assert count() == few == 2


def test_object_grants_are_visible_row_by_row_in_flat_queries(cast, memberships) -> None:
    from apps.access.services import grant_assign

    viewer = memberships["viewer"]
    granted = DatasetFactory(tenant=cast.acme, name="granted")
    DatasetFactory.create_batch(5, tenant=cast.acme)
    grant_assign(action="dataset.read", obj=granted, membership=viewer)
    viewer = Membership.objects.for_tenant(cast.acme).get(pk=viewer.pk)  # a fresh request's membership
    assert list(selectors.dataset_list(tenant=cast.acme, subject=viewer)) == [granted]
    DatasetFactory.create_batch(20, tenant=cast.acme)
    with CaptureQueriesContext(connection) as ctx:
        assert list(selectors.dataset_list(tenant=cast.acme, subject=viewer)) == [granted]
    assert len(ctx.captured_queries) == 1  # the page: visibility is filtered in SQL (apps.access.restrict)
    assert selectors.dataset_get(tenant=cast.acme, subject=viewer, pk=granted.pk) == granted
