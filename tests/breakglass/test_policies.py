"""Issue #11 item 1: policies, from the side of someone trying to hand out more than allowed."""

from __future__ import annotations

import pytest
from django.test import override_settings

from apps.access import services as access_services
from apps.access.models import Role
from apps.audit.models import AuditEvent
from apps.breakglass import services
from apps.breakglass.models import Policy
from apps.breakglass.services import BreakglassError

pytestmark = pytest.mark.django_db


def _create(w, actor=None, **kwargs):
    params = {
        "tenant": w.cast.acme,
        "actor": actor or w.owner,
        "name": "p",
        "role": Role.objects.get(tenant=w.cast.acme, key="analyst", builtin=True),
        "approvals_required": 1,
        "max_duration_minutes": 60,
    }
    params.update(kwargs)
    return services.policy_create(**params)


def test_policy_is_created_and_audited(world) -> None:
    assert AuditEvent.objects.filter(action="breakglass.policy_create", tenant=world.cast.acme).count() == 1
    assert world.policy.approvals_required == 1


@pytest.mark.parametrize("approvals", [0, 4])
def test_approvals_outside_one_to_three_refused(world, approvals) -> None:
    with pytest.raises(BreakglassError):
        _create(world, approvals_required=approvals)
    assert not Policy.objects.filter(name="p").exists()


@pytest.mark.parametrize("key", ["admin", "owner", "billing"])
def test_roles_that_manage_people_sso_or_money_need_two_approvals(world, key) -> None:
    role = Role.objects.get(tenant=world.cast.acme, key=key, builtin=True)
    with pytest.raises(BreakglassError, match="at least 2"):
        _create(world, role=role, approvals_required=1)
    assert _create(world, role=role, approvals_required=2).approvals_required == 2


def test_duration_above_the_platform_ceiling_refused(world) -> None:
    with pytest.raises(BreakglassError):
        _create(world, max_duration_minutes=8 * 60 + 1)
    with override_settings(BREAKGLASS_MAX_DURATION_HOURS=1), pytest.raises(BreakglassError):
        _create(world, max_duration_minutes=61)


def test_editor_cannot_hand_out_a_role_they_do_not_hold(world) -> None:
    # Admin lacks billing.manage: a policy handing out Billing would be an escalation.
    role = Role.objects.get(tenant=world.cast.acme, key="billing", builtin=True)
    with pytest.raises(BreakglassError, match="do not hold"):
        _create(world, actor=world.admin, role=role, approvals_required=2)
    custom = access_services.role_create(
        tenant=world.cast.acme, key="money", name="Money", permissions=["billing.manage"], actor=world.owner
    )
    with pytest.raises(BreakglassError):
        _create(world, actor=world.admin, role=custom, approvals_required=2)


def test_members_without_role_manage_cannot_edit_policies(world) -> None:
    with pytest.raises(BreakglassError, match=r"role\.manage"):
        _create(world, actor=world.approver1)
    with pytest.raises(BreakglassError):
        services.policy_update(policy=world.policy, actor=world.member, paused=True)


def test_another_tenants_role_refused(world) -> None:
    role = Role.objects.get(tenant=world.cast.globex, key="analyst", builtin=True)
    with pytest.raises(BreakglassError):
        _create(world, role=role)


def test_pause_is_audited_with_before_and_after(world) -> None:
    services.policy_update(policy=world.policy, actor=world.owner, paused=True)
    event = AuditEvent.objects.filter(action="breakglass.policy_update").get()
    assert event.metadata["before"]["paused"] is False
    assert event.metadata["after"]["paused"] is True
