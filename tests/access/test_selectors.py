"""Access selectors: tenant scoping, the shape of what they return, and their query budgets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from guardian.shortcuts import assign_perm

from apps.access import decisions, selectors, services
from apps.access.models import DeniedDecision, Role
from apps.catalog.models import Dataset, Tool
from apps.tenants.models import Membership
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    services.builtin_roles_seed(tenant=cast.globex)
    cast.viewer_m = Membership.objects.get(tenant=cast.acme, user=cast.viewer)
    cast.role = services.role_create(tenant=cast.acme, key="payroll", name="Payroll", permissions=["audit.read"])
    cast.payroll = Dataset.objects.create(tenant=cast.acme, name="payroll")
    cast.search = Tool.objects.create(tenant=cast.acme, name="web-search")
    cast.globex_data = Dataset.objects.create(tenant=cast.globex, name="globex-data")
    return cast


def test_role_get_is_tenant_scoped_and_tolerates_huge_ids(world):
    assert selectors.role_get(tenant=world.acme, role_id=world.role.pk) == world.role
    globex_role = Role.objects.for_tenant(world.globex).get(key="owner")
    assert selectors.role_get(tenant=world.acme, role_id=globex_role.pk) is None
    assert selectors.role_get(tenant=world.acme, role_id=0) is None
    assert selectors.role_get(tenant=world.acme, role_id=10**30) is None


def test_role_list_counts_bindings_in_one_query(world):
    services.binding_create(role=world.role, membership=world.viewer_m)
    services.binding_create(role=world.role, idp_group="a")
    services.binding_create(role=world.role, idp_group="b")
    with CaptureQueriesContext(connection) as queries:
        roles = {role.key: role for role in selectors.role_list(tenant=world.acme)}
    assert len(queries.captured_queries) == 1
    assert (roles["payroll"].member_binding_count, roles["payroll"].group_binding_count) == (1, 2)
    assert (roles["owner"].member_binding_count, roles["owner"].group_binding_count) == (0, 0)
    assert next(iter(roles)) == "admin"  # built-in first, by name
    assert all(role.tenant_id == world.acme.pk for role in roles.values())


def test_object_grants_reads_a_page_in_three_queries(world):
    datasets = [Dataset.objects.create(tenant=world.acme, name=f"d{index}") for index in range(10)]
    for dataset in datasets:
        services.grant_assign(action="dataset.read", obj=dataset, role=world.role)
        services.grant_assign(action="dataset.write", obj=dataset, membership=world.viewer_m)
    services.grant_assign(action="tool.execute", obj=world.search, membership=world.viewer_m)
    objects = [*datasets, world.search]
    ContentType.objects.clear_cache()
    ContentType.objects.get_for_models(Dataset, Tool)  # content types are cached per process
    with CaptureQueriesContext(connection) as queries:
        rows = selectors.object_grants(tenant=world.acme, objects=objects)
    assert len(queries.captured_queries) == 3
    first = rows[0]
    assert first.target_value == f"dataset:{datasets[0].pk}"
    assert [action for action, _ in first.by_action] == ["dataset.read", "dataset.write"]
    read, write = (grants for _, grants in first.by_action)
    assert [(g.role, g.grantee_value) for g in read] == [(world.role, f"role:{world.role.pk}")]
    assert [g.holder_label for g in write] == ["viewer@acme.example"]
    tool = rows[-1]
    assert [action for action, _ in tool.by_action] == ["tool.execute"]
    assert tool.count == 1


def test_object_grants_ignore_other_tenants_objects_and_foreign_groups(world):
    globex_role = Role.objects.for_tenant(world.globex).get(key="viewer")
    # A grant that could only exist if someone wrote guardian rows by hand: a globex role on an acme object.
    assign_perm("catalog.dataset_read", globex_role.group, world.payroll)
    assign_perm("catalog.dataset_read", Group.objects.create(name="not-a-role"), world.payroll)
    rows = selectors.object_grants(tenant=world.acme, objects=[world.payroll, world.globex_data])
    assert [row.obj for row in rows] == [world.payroll]
    assert rows[0].count == 0
    assert selectors.object_grants(tenant=world.acme, objects=[]) == []


def test_former_member_grants_are_reported(world):
    services.grant_assign(action="dataset.read", obj=world.payroll, membership=world.viewer_m)
    world.viewer_m.delete()
    (row,) = selectors.object_grants(tenant=world.acme, objects=[world.payroll])
    (grant,) = row.by_action[0][1]
    assert grant.membership is None
    assert grant.holder_label == "viewer@acme.example (no longer a member)"
    assert grant.grantee_value == ""


def test_tenant_wide_roles(world):
    result = selectors.tenant_wide_roles(tenant=world.acme, actions=["dataset.write", "audit.read"])
    assert [role.key for role in result["dataset.write"]] == ["admin", "developer", "owner"]
    assert "payroll" in [role.key for role in result["audit.read"]]
    assert all(role.tenant_id == world.acme.pk for roles in result.values() for role in roles)


def test_member_roles_lists_every_source(world):
    services.binding_create(role=world.role, membership=world.viewer_m)
    developer = Role.objects.for_tenant(world.acme).get(key="developer")
    services.binding_create(role=developer, idp_group="eng")
    globex_role = Role.objects.for_tenant(world.globex).get(key="owner")
    services.binding_create(role=globex_role, idp_group="eng")  # same group name, other tenant
    world.viewer_m.idp_groups = ["eng", "all-staff"]
    with CaptureQueriesContext(connection) as queries:
        roles = selectors.member_roles(tenant=world.acme, membership=world.viewer_m)
    assert len(queries.captured_queries) == 1
    assert roles.base is not None
    assert roles.base.key == "viewer"
    assert roles.assigned == [world.role]
    assert roles.via_groups == [("eng", developer)]
    assert roles.unmapped_groups == ["all-staff"]


def test_held_permissions(world):
    admin = Membership.objects.get(tenant=world.acme, user=world.admin)
    assert "billing.manage" not in decisions.held_permissions(admin, tenant=world.acme)
    assert "role.manage" in decisions.held_permissions(admin, tenant=world.acme)
    services.binding_create(role=world.role, membership=world.viewer_m)
    viewer = Membership.objects.get(pk=world.viewer_m.pk)
    assert decisions.held_permissions(viewer, tenant=world.acme) == {"tenant.view", "prompt.read", "audit.read"}
    assert not DeniedDecision.objects.exists()


def test_membership_choices_exclude_disabled_and_other_tenants(world):
    disabled = MembershipFactory(tenant=world.acme, status="disabled")
    choices = list(selectors.membership_choices(tenant=world.acme))
    assert disabled not in choices
    assert all(m.tenant_id == world.acme.pk for m in choices)
    assert disabled in selectors.explain_membership_choices(tenant=world.acme)


def _deny(tenant, subject_id: str, display: str, action: str, when: datetime) -> None:
    DeniedDecision.objects.create(
        tenant=tenant,
        occurred_at=when,
        subject_type="member",
        subject_id=subject_id,
        subject_display=display,
        action=action,
    )


def test_denied_filters_and_summary(world):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    viewer = str(world.viewer_m.pk)
    for hours in range(4):
        _deny(world.acme, viewer, "viewer@acme.example", "billing.manage", start + timedelta(hours=hours))
    _deny(world.acme, viewer, "viewer@acme.example", "sso.manage", start + timedelta(days=2))
    _deny(world.acme, "999", "gone@acme.example", "sso.manage", start)  # a member who has left
    _deny(world.globex, viewer, "viewer@acme.example", "billing.manage", start)

    everything = selectors.DeniedFilters()
    summary = selectors.denied_summary(tenant=world.acme, filters=everything)
    assert [(row["subject_id"], row["action"], row["count"]) for row in summary] == [
        (viewer, "billing.manage", 4),
        (viewer, "sso.manage", 1),
        ("999", "sso.manage", 1),
    ]
    assert summary[0]["display"] == "viewer@acme.example"

    day_one = selectors.DeniedFilters(occurred_from=start, occurred_before=start + timedelta(days=1))
    assert selectors.denied_queryset(tenant=world.acme, filters=day_one).count() == 5
    by_email = selectors.DeniedFilters(subject="viewer@acme.example", action="sso.manage")
    assert selectors.denied_queryset(tenant=world.acme, filters=by_email).count() == 1
    by_old_email = selectors.DeniedFilters(subject="gone@acme.example")
    assert selectors.denied_queryset(tenant=world.acme, filters=by_old_email).count() == 1
    page = selectors.denied_page(tenant=world.acme, filters=everything, cursor=None, size=4)
    assert len(page.rows) == 4
    assert page.next_cursor
    rest = selectors.denied_page(tenant=world.acme, filters=everything, cursor=page.next_cursor, size=4)
    assert len(rest.rows) == 2
    assert rest.next_cursor is None
