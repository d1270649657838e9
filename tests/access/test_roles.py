"""Roles and bindings: custom roles, group bindings, invalidation, query budget, decision log."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.access import decisions, permsets, services
from apps.access.models import DeniedDecision, Role
from apps.audit.models import AuditEvent
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def roles(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    services.builtin_roles_seed(tenant=cast.globex)
    return cast


def _fresh(cast, user, tenant=None) -> Membership:
    """A membership as a new request would load it (no memo)."""
    return Membership.objects.select_related("tenant").get(tenant=tenant or cast.acme, user=user)


def test_builtin_roles_are_seeded_once(roles) -> None:
    services.builtin_roles_seed(tenant=roles.acme)
    keys = set(Role.objects.for_tenant(roles.acme).values_list("key", flat=True))
    assert {"owner", "admin", "developer", "analyst", "billing", "auditor", "approver"} <= keys
    assert Role.objects.for_tenant(roles.acme).count() == len(keys)


def test_custom_role_bound_to_member_grants_its_permissions(roles) -> None:
    viewer = _fresh(roles, roles.viewer)
    assert not decisions.authorize(viewer, "audit.read", log_denial=False)
    role = services.role_create(tenant=roles.acme, key="reviewer", name="Reviewer", permissions=["audit.read"])
    services.binding_create(role=role, membership=viewer)
    decision = decisions.authorize(_fresh(roles, roles.viewer), "audit.read")
    assert decision.allowed
    assert decision.reasons == ("role Reviewer (assigned) grants audit.read tenant-wide",)


def test_group_binding_follows_the_members_groups(roles) -> None:
    role = services.role_create(tenant=roles.acme, key="finance", name="Finance", permissions=["billing.view"])
    services.binding_create(role=role, idp_group="finance-team")
    viewer = _fresh(roles, roles.viewer)
    assert not decisions.authorize(viewer, "billing.view", log_denial=False)
    viewer = _fresh(roles, roles.viewer)
    viewer.idp_groups = ["finance-team"]
    decision = decisions.authorize(viewer, "billing.view")
    assert decision.allowed
    assert "group finance-team" in decision.reasons[0]


def test_unbinding_is_denied_on_the_very_next_call(roles) -> None:
    role = services.role_create(tenant=roles.acme, key="reviewer", name="Reviewer", permissions=["audit.read"])
    binding = services.binding_create(role=role, membership=_fresh(roles, roles.viewer))
    assert decisions.authorize(_fresh(roles, roles.viewer), "audit.read")
    services.binding_delete(binding=binding)
    assert not decisions.authorize(_fresh(roles, roles.viewer), "audit.read")


def test_unknown_permission_in_a_role_is_refused(roles) -> None:
    with pytest.raises(services.AccessError, match="Unknown permission"):
        services.role_create(tenant=roles.acme, key="bad", name="Bad", permissions=["audit.read", "nuke.all"])
    assert not Role.objects.for_tenant(roles.acme).filter(key="bad").exists()


def test_builtin_roles_cannot_be_edited_or_deleted(roles) -> None:
    owner_role = Role.objects.for_tenant(roles.acme).get(key="owner")
    with pytest.raises(services.AccessError):
        services.role_update(role=owner_role, name="Boss", permissions=[])
    with pytest.raises(services.AccessError):
        services.role_delete(role=owner_role)


def test_deleting_a_role_in_use_needs_confirmation(roles) -> None:
    role = services.role_create(tenant=roles.acme, key="reviewer", name="Reviewer", permissions=["audit.read"])
    services.binding_create(role=role, membership=_fresh(roles, roles.viewer))
    assert services.role_delete_preview(role=role) == [{"subject": roles.viewer.email, "permissions": ["audit.read"]}]
    with pytest.raises(services.AccessError, match="in use"):
        services.role_delete(role=role)
    services.role_delete(role=role, force=True)
    assert not decisions.authorize(_fresh(roles, roles.viewer), "audit.read", log_denial=False)


def test_binding_across_tenants_is_refused(roles) -> None:
    globex_role = Role.objects.for_tenant(roles.globex).get(key="auditor")
    with pytest.raises(services.AccessError, match="another tenant"):
        services.binding_create(role=globex_role, membership=_fresh(roles, roles.viewer))


def test_role_changes_are_audited_with_before_and_after(roles) -> None:
    role = services.role_create(tenant=roles.acme, key="reviewer", name="Reviewer", permissions=["audit.read"])
    services.role_update(role=role, name="Reviewer", permissions=["audit.read", "billing.view"])
    event = AuditEvent.objects.for_tenant(roles.acme).filter(action="role.update").get()
    assert event.metadata["before"]["permissions"] == ["audit.read"]
    assert event.metadata["after"]["permissions"] == ["audit.read", "billing.view"]


def test_cold_decision_costs_at_most_three_queries_and_warm_none(roles) -> None:
    role = services.role_create(tenant=roles.acme, key="reviewer", name="Reviewer", permissions=["audit.read"])
    services.binding_create(role=role, idp_group="eng")
    member = _fresh(roles, roles.member)
    member.idp_groups = ["eng"]
    permsets.clear_local_cache()
    with CaptureQueriesContext(connection) as cold:
        assert decisions.authorize(member, "audit.read")
    assert len(cold.captured_queries) <= 3
    with CaptureQueriesContext(connection) as warm:
        for _ in range(100):
            decisions.authorize(member, "audit.read")
            decisions.authorize(member, "prompt.create")
    assert len(warm.captured_queries) == 0


def test_denials_are_logged_with_reason(roles) -> None:
    viewer = _fresh(roles, roles.viewer)
    decisions.authorize(viewer, "billing.manage")
    logged = DeniedDecision.objects.for_tenant(roles.acme).get()
    assert logged.action == "billing.manage"
    assert logged.subject_id == str(viewer.pk)
    assert logged.reasons == ["no role grants billing.manage"]


def test_role_list_counts_holders_of_builtin_roles(roles) -> None:
    from apps.access.selectors import role_list

    counts = {role.key: role.holder_count for role in role_list(tenant=roles.acme)}
    assert counts["owner"] == 1
    assert counts["viewer"] == 1
    assert counts["auditor"] == 0
