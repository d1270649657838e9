"""Issue #11 items 2 and 3 from the attacker's side: requests, approvals and the time box.

Every rule is enforced by the services (a crafted POST reaches them as
directly as a form), so these tests call the services with the inputs an
attacker would choose.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from apps.access import decisions
from apps.access.models import Role, RoleBinding
from apps.audit.models import AuditEvent
from apps.breakglass import services
from apps.breakglass.models import Approval, Elevation
from apps.breakglass.services import BreakglassError
from apps.tenants.models import Membership
from tests.breakglass.conftest import ask, member

pytestmark = pytest.mark.django_db


def _approve(w, elevation, approver):
    return services.elevation_approve(tenant=w.cast.acme, elevation_id=elevation.pk, approver=approver)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"duration_minutes": 121}, "between 1 and 120"),
        ({"duration_minutes": 0}, "between"),
        ({"justification": "   "}, "why"),
    ],
)
def test_bad_requests_refused_and_nothing_saved(world, kwargs, match) -> None:
    with pytest.raises(BreakglassError, match=match):
        ask(world, **kwargs)
    assert not Elevation.objects.exists()


def test_incident_reference_required_when_the_policy_says_so(world) -> None:
    services.policy_update(policy=world.policy, actor=world.owner, incident_required=True)
    with pytest.raises(BreakglassError, match="incident"):
        ask(world)
    assert ask(world, incident_ref="INC-123").incident_ref == "INC-123"


def test_paused_policy_and_ineligible_member_refused(world) -> None:
    with pytest.raises(BreakglassError, match="not eligible"):
        ask(world, who=world.approver1)  # approvers are not among the policy's requesters
    services.policy_update(policy=world.policy, actor=world.owner, paused=True)
    with pytest.raises(BreakglassError, match="paused"):
        ask(world)
    assert not Elevation.objects.exists()


def test_request_audited_and_approvers_emailed(world, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        elevation = ask(world)
    event = AuditEvent.objects.get(action="breakglass.request")
    assert event.metadata["elevation"] == elevation.pk
    to = sorted(m.to[0] for m in mail.outbox)
    # Eligible approvers (role approver or owner) with breakglass.approve; never the requester.
    assert to == ["approver1@acme.example", "approver2@acme.example", "owner@acme.example"]


def test_self_approval_refused_even_for_an_owner(world) -> None:
    services.policy_update(policy=world.policy, actor=world.owner, requester_roles=["owner"])
    elevation = ask(world, who=world.owner)
    with pytest.raises(BreakglassError, match="your own"):
        _approve(world, elevation, member(world.cast, world.cast.owner))
    assert not Approval.objects.exists()
    assert Elevation.objects.get().status == Elevation.Status.PENDING


def test_approval_activates_with_the_elevation_in_every_reason(world) -> None:
    elevation = ask(world)
    assert not decisions.can(member(world.cast, world.cast.member), "dataset.write")
    elevation = _approve(world, elevation, world.approver1)
    assert elevation.status == Elevation.Status.ACTIVE
    assert elevation.expires_at == elevation.activated_at + timedelta(minutes=30)
    decision = decisions.authorize(member(world.cast, world.cast.member), "dataset.write")
    assert decision.allowed
    expected = f"break-glass elevation #{elevation.pk}, approved by approver1@acme.example, until"
    assert all(expected in reason for reason in decision.reasons)
    assert AuditEvent.objects.filter(action="breakglass.activate", metadata__elevation=elevation.pk).count() == 1


def test_distinct_approvers_needed(world) -> None:
    services.policy_update(policy=world.policy, actor=world.owner, approvals_required=2)
    elevation = ask(world)
    _approve(world, elevation, world.approver1)
    with pytest.raises(BreakglassError, match="already decided"):
        _approve(world, elevation, world.approver1)
    assert Elevation.objects.get().status == Elevation.Status.PENDING
    assert _approve(world, elevation, world.approver2).status == Elevation.Status.ACTIVE


def test_approving_after_the_pending_lifetime_refused(world) -> None:
    elevation = ask(world)
    later = timezone.now() + timedelta(minutes=60, seconds=1)
    with time_machine.travel(later), pytest.raises(BreakglassError, match="not decided in time"):
        _approve(world, elevation, world.approver1)
    assert Elevation.objects.get().status == Elevation.Status.PENDING
    assert not RoleBinding.objects.filter(expires_at__isnull=False).exists()


def test_approving_after_a_deny_refused(world) -> None:
    elevation = ask(world)
    services.elevation_deny(tenant=world.cast.acme, elevation_id=elevation.pk, approver=world.approver2, comment="no")
    with pytest.raises(BreakglassError, match="no longer pending"):
        _approve(world, elevation, world.approver1)
    assert Elevation.objects.get().status == Elevation.Status.DENIED


def test_approver_who_lost_the_right_is_refused(world) -> None:
    elevation = ask(world)
    stale = world.approver1  # loaded (and its permission set memoised) before the change
    assert decisions.can(stale, "breakglass.approve")
    Membership.objects.filter(pk=stale.pk).update(role="viewer")
    with pytest.raises(BreakglassError, match="may not approve"):
        _approve(world, elevation, stale)
    assert not Approval.objects.exists()


def test_another_tenants_elevation_id_is_not_found(world) -> None:
    elevation = ask(world)
    for call in (services.elevation_approve, services.elevation_deny):
        with pytest.raises(Elevation.DoesNotExist):
            call(tenant=world.cast.globex, elevation_id=elevation.pk, approver=world.globex_owner)
    with pytest.raises(Elevation.DoesNotExist):
        services.elevation_end(tenant=world.cast.globex, elevation_id=elevation.pk, actor=world.globex_owner)
    assert Elevation.objects.get().status == Elevation.Status.PENDING


def test_expired_elevation_refused_at_check_time_without_a_worker(world) -> None:
    elevation = _approve(world, ask(world, duration_minutes=5), world.approver1)
    requester = member(world.cast, world.cast.member)
    assert decisions.can(requester, "dataset.write")
    with time_machine.travel(elevation.expires_at + timedelta(seconds=1)):
        assert not decisions.can(requester, "dataset.write")  # same request memo
        assert not decisions.can(member(world.cast, world.cast.member), "dataset.write")
    assert Elevation.objects.get().status == Elevation.Status.ACTIVE  # the worker never ran


def test_end_early_by_requester_approver_or_member_manager_only(world) -> None:
    elevation = _approve(world, ask(world), world.approver1)
    with pytest.raises(BreakglassError, match="Only the requester"):
        services.elevation_end(tenant=world.cast.acme, elevation_id=elevation.pk, actor=world.viewer)
    ended = services.elevation_end(tenant=world.cast.acme, elevation_id=elevation.pk, actor=world.admin)
    assert ended.status == Elevation.Status.ENDED
    assert not decisions.can(member(world.cast, world.cast.member), "dataset.write")
    assert AuditEvent.objects.filter(action="breakglass.end", metadata__elevation=elevation.pk).count() == 1


def test_requester_cannot_stack_requests(world) -> None:
    ask(world)
    with pytest.raises(BreakglassError, match="already"):
        ask(world)


def test_elevation_role_is_the_policys(world) -> None:
    elevation = _approve(world, ask(world), world.approver1)
    binding = RoleBinding.objects.get(pk=elevation.binding_id)
    assert binding.role == Role.objects.get(tenant=world.cast.acme, key="developer", builtin=True)
    assert binding.membership_id == world.member.pk
