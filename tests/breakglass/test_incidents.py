"""Closing an incident from the console (#11, item 5): who may, what ends, what stays, and the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from apps.access import decisions
from apps.access.models import Role
from apps.audit.models import AuditEvent
from apps.breakglass import incidents, services
from apps.breakglass.models import Elevation, IncidentClosure, Policy
from apps.breakglass.services import BreakglassError
from tests.breakglass.conftest import ask, member

pytestmark = pytest.mark.django_db


def _active(w, ref: str, who=None, policy=None) -> Elevation:
    kwargs = {"incident_ref": ref} | ({"policy": policy} if policy else {})
    return services.elevation_approve(
        tenant=w.cast.acme, elevation_id=ask(w, who=who, **kwargs).pk, approver=w.approver1
    )


def _statuses() -> dict[int, str]:
    return dict(Elevation.objects.values_list("pk", "status"))


def test_an_approver_closes_an_incident_and_its_elevations_end(world) -> None:
    elevation = _active(world, "INC-123")
    assert decisions.can(member(world.cast, world.cast.member), "dataset.write")
    closure = incidents.incident_close(tenant=world.cast.acme, actor=world.approver2, incident_ref=" inc-123 ")
    assert (closure.ended, closure.cancelled, closure.closed_by_id) == (1, 0, world.approver2.pk)
    elevation.refresh_from_db()
    assert (elevation.status, elevation.ended_by_id) == (Elevation.Status.ENDED, world.approver2.pk)
    assert not decisions.can(member(world.cast, world.cast.member), "dataset.write")
    event = AuditEvent.objects.get(action="breakglass.incident_close")
    assert event.metadata["elevations"] == [elevation.pk]
    assert event.actor_display == "approver2@acme.example"


def test_other_incidents_stay_open(world) -> None:
    kept = _active(world, "INC-124")
    with pytest.raises(BreakglassError, match="No open request"):
        incidents.incident_close(tenant=world.cast.acme, actor=world.owner, incident_ref="INC-12")
    assert Elevation.objects.get(pk=kept.pk).status == Elevation.Status.ACTIVE
    assert not IncidentClosure.objects.exists()


@pytest.mark.parametrize("ref", ["", "   ", "x" * 101])
def test_a_bad_reference_is_refused(world, ref) -> None:
    _active(world, "INC-1")
    before = _statuses()
    with pytest.raises(BreakglassError, match="incident reference"):
        incidents.incident_close(tenant=world.cast.acme, actor=world.owner, incident_ref=ref)
    assert _statuses() == before


def test_someone_neither_approver_nor_member_manager_is_refused(world) -> None:
    elevation = _active(world, "INC-9")
    for who in (world.member, world.viewer):
        with pytest.raises(BreakglassError, match="only its approvers or a member manager"):
            incidents.incident_close(tenant=world.cast.acme, actor=who, incident_ref="INC-9")
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ACTIVE
    assert not AuditEvent.objects.filter(action="breakglass.incident_close").exists()


def test_an_approver_of_one_policy_cannot_close_another_policys_elevation(world) -> None:
    # A policy only Owners approve, and an elevation under it naming the same incident.
    owners_only = services.policy_create(
        tenant=world.cast.acme,
        actor=world.owner,
        name="Owners approve",
        role=world.policy.role,
        approvals_required=1,
        max_duration_minutes=60,
        requester_roles=["admin"],
        approver_roles=["owner"],
    )
    first = _active(world, "INC-5")
    second = services.elevation_approve(
        tenant=world.cast.acme,
        elevation_id=ask(world, who=world.admin, incident_ref="INC-5", policy=owners_only).pk,
        approver=world.owner,
    )
    with pytest.raises(BreakglassError, match="Owners approve"):
        incidents.incident_close(tenant=world.cast.acme, actor=world.approver1, incident_ref="INC-5")
    assert _statuses()[first.pk] == _statuses()[second.pk] == Elevation.Status.ACTIVE
    # A member manager (the admin holds member.manage) may close it all.
    closure = incidents.incident_close(tenant=world.cast.acme, actor=world.admin, incident_ref="INC-5")
    assert closure.ended == 2


def test_an_approver_who_lost_the_right_cannot_close(world) -> None:
    _active(world, "INC-7")
    stale = world.approver1
    type(stale).objects.filter(pk=stale.pk).update(role="viewer")
    with pytest.raises(BreakglassError):
        incidents.incident_close(tenant=world.cast.acme, actor=stale, incident_ref="INC-7")


def test_pending_requests_naming_it_are_cancelled_and_cannot_be_approved(world) -> None:
    pending = ask(world, incident_ref="INC-8")
    closure = incidents.incident_close(tenant=world.cast.acme, actor=world.owner, incident_ref="INC-8")
    assert (closure.ended, closure.cancelled) == (0, 1)
    with pytest.raises(BreakglassError, match="no longer pending"):
        services.elevation_approve(tenant=world.cast.acme, elevation_id=pending.pk, approver=world.approver1)
    assert Elevation.objects.get(pk=pending.pk).status == Elevation.Status.CANCELLED


def test_another_tenants_incident_is_not_found_from_this_tenant(world) -> None:
    globex_policy = Policy.objects.create(
        tenant=world.cast.globex,
        name="G",
        role=Role.objects.get(tenant=world.cast.globex, key="analyst"),
        approvals_required=1,
        max_duration_minutes=60,
    )
    now = datetime.now(UTC)
    globex = Elevation.objects.create(
        tenant=world.cast.globex,
        policy=globex_policy,
        requester=world.globex_owner,
        role=globex_policy.role,
        duration_minutes=10,
        justification="x",
        incident_ref="INC-77",
        approvals_required=1,
        requested_at=now,
        pending_until=now + timedelta(hours=1),
    )
    with pytest.raises(BreakglassError, match="No open request"):
        incidents.incident_close(tenant=world.cast.acme, actor=world.owner, incident_ref="INC-77")
    # Nor can Globex's owner close Acme's incidents by naming Acme.
    _active(world, "INC-78")
    with pytest.raises(BreakglassError):
        incidents.incident_close(tenant=world.cast.acme, actor=world.globex_owner, incident_ref="INC-78")
    assert Elevation.objects.get(pk=globex.pk).status == Elevation.Status.PENDING
    assert not IncidentClosure.objects.exists()


def test_the_incidents_page_lists_open_incidents_and_closes_one(world, client_for) -> None:
    elevation = _active(world, "INC-42")
    client = client_for(world.approver2.user)
    page = client.get(reverse("breakglass:incident_list", kwargs={"tenant_slug": "acme"})).content.decode()
    assert "INC-42" in page
    assert "Close incident INC-42" in page
    response = client.post(
        reverse("breakglass:incident_close", kwargs={"tenant_slug": "acme"}), {"incident_ref": "INC-42"}, follow=True
    )
    html = response.content.decode()
    assert "Incident INC-42 closed: 1 elevation ended, 0 pending requests cancelled." in html
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ENDED
    assert "Recently closed" in html


def test_a_member_posting_the_close_form_changes_nothing(world, client_for) -> None:
    elevation = _active(world, "INC-43")
    response = client_for(world.cast.viewer).post(
        reverse("breakglass:incident_close", kwargs={"tenant_slug": "acme"}), {"incident_ref": "INC-43"}, follow=True
    )
    assert "only its approvers or a member manager" in response.content.decode()
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ACTIVE


def test_requester_and_approvers_are_told(world, django_capture_on_commit_callbacks) -> None:
    from django.core import mail

    _active(world, "INC-31")
    pending = ask(world, who=world.admin, incident_ref="INC-31", policy=_second_policy(world))
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        incidents.incident_close(tenant=world.cast.acme, actor=world.owner, incident_ref="INC-31")
    subjects = sorted({m.subject for m in mail.outbox})
    assert any("was ended early" in s for s in subjects), subjects
    assert any(f"#{pending.pk} was cancelled" in s for s in subjects), subjects
    assert "admin@acme.example" in {m.to[0] for m in mail.outbox}


def _second_policy(w) -> Policy:
    return services.policy_create(
        tenant=w.cast.acme,
        actor=w.owner,
        name="Admins",
        role=w.policy.role,
        approvals_required=1,
        max_duration_minutes=60,
        requester_roles=["admin"],
        approver_roles=["owner"],
    )
