"""Things that change between a request and its decision, or during an elevation (#11 review).

The policy edited while a request waits, its role edited to carry administrative
permissions, the requester removed from the tenant while elevated, and an
elevation whose time box ran out before the beat task tidied it up: none of
them may hand out more than the policy allows now, lose history, or be shown
as active anywhere.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse

from apps.access import decisions
from apps.access import services as access_services
from apps.access.members import member_remove, member_set_disabled
from apps.access.models import Role
from apps.audit.models import AuditEvent
from apps.breakglass import selectors, services
from apps.breakglass.models import Approval, Elevation
from apps.breakglass.services import BreakglassError
from tests.breakglass.conftest import ask, member

pytestmark = pytest.mark.django_db


def _approve(w, elevation, approver):
    return services.elevation_approve(tenant=w.cast.acme, elevation_id=elevation.pk, approver=approver)


def _custom_role(w, permissions):
    return access_services.role_create(
        tenant=w.cast.acme, key="responder", name="Responder", permissions=permissions, actor=w.owner
    )


# --- the policy edited while a request waits --------------------------------------------------


def test_cap_lowered_while_pending_caps_the_time_box(world) -> None:
    requested = ask(world, duration_minutes=120)
    services.policy_update(policy=world.policy, actor=world.owner, max_duration_minutes=30)
    elevation = _approve(world, requested, world.approver1)
    assert elevation.status == Elevation.Status.ACTIVE
    assert elevation.expires_at - elevation.activated_at == timedelta(minutes=30)


def test_approvals_raised_while_pending_need_the_new_count(world) -> None:
    requested = ask(world)
    services.policy_update(policy=world.policy, actor=world.owner, approvals_required=2)
    assert _approve(world, requested, world.approver1).status == Elevation.Status.PENDING
    assert _approve(world, requested, world.approver2).status == Elevation.Status.ACTIVE


def test_policy_role_changed_while_pending_refuses_the_old_request(world) -> None:
    requested = ask(world)
    viewer_role = Role.objects.get(tenant=world.cast.acme, key="viewer", builtin=True)
    services.policy_update(policy=world.policy, actor=world.owner, role=viewer_role)
    with pytest.raises(BreakglassError, match="changed"):
        _approve(world, requested, world.approver1)
    assert Elevation.objects.get().status == Elevation.Status.PENDING
    assert not Approval.objects.exists()


def test_paused_while_pending_refuses_the_approval(world) -> None:
    requested = ask(world)
    services.policy_update(policy=world.policy, actor=world.owner, paused=True)
    with pytest.raises(BreakglassError, match="paused"):
        _approve(world, requested, world.approver1)
    assert Elevation.objects.get().status == Elevation.Status.PENDING


def test_role_given_an_administrative_permission_needs_two_approvals(world) -> None:
    role = _custom_role(world, ["dataset.read"])
    services.policy_update(policy=world.policy, actor=world.owner, role=role)
    requested = ask(world)
    # Someone with role.manage edits the role (access knows nothing of break-glass).
    access_services.role_update(
        role=role, name="Responder", permissions=["dataset.read", "member.manage"], actor=world.owner
    )
    assert _approve(world, requested, world.approver1).status == Elevation.Status.PENDING
    assert not decisions.can(member(world.cast, world.cast.member), "member.manage")
    assert _approve(world, requested, world.approver2).status == Elevation.Status.ACTIVE


# --- the requester removed while elevated ---------------------------------------------------


def test_member_removed_while_elevated_ends_it_and_keeps_the_history(world) -> None:
    elevation = _approve(world, ask(world), world.approver1)
    member_remove(membership=world.member, actor=world.owner)
    kept = Elevation.objects.get(pk=elevation.pk)
    assert kept.status == Elevation.Status.ENDED
    assert kept.ended_at is not None
    assert Approval.objects.filter(elevation=kept).count() == 1
    assert AuditEvent.objects.filter(action="breakglass.end", metadata__elevation=elevation.pk).count() == 1
    assert selectors.active_elevations(tenant=world.cast.acme) == []


def test_approver_removed_keeps_their_past_decision(world) -> None:
    elevation = _approve(world, ask(world), world.approver1)
    member_remove(membership=world.approver1, actor=world.owner)
    assert Approval.objects.filter(elevation_id=elevation.pk).count() == 1


# --- a time box over before the beat task ran ------------------------------------------------


def test_expired_but_not_swept_is_not_listed_as_active(world, client_for) -> None:
    elevation = _approve(world, ask(world, duration_minutes=5, incident_ref="INC-7"), world.approver1)
    with time_machine.travel(elevation.expires_at + timedelta(seconds=1)):
        assert Elevation.objects.get().status == Elevation.Status.ACTIVE  # no worker ran
        acme = world.cast.acme
        assert selectors.active_elevations(tenant=acme) == []
        assert selectors.elevation_counts(tenant=acme)["active"] == 0
        client = client_for(world.cast.owner)
        approvals = client.get(reverse("breakglass:approvals", kwargs={"tenant_slug": "acme"})).content.decode()
        assert "No active elevations" in approvals
        listing = reverse("breakglass:elevation_list", kwargs={"tenant_slug": "acme"})
        link = f'elevations/{elevation.pk}/"'
        active = client.get(listing + "?status=active").content.decode()
        assert link not in active
        expired = client.get(listing + "?status=expired").content.decode()
        assert link in expired
        assert 'badge-warn">Active<' not in expired
        detail = client.get(
            reverse("breakglass:elevation_detail", kwargs={"tenant_slug": "acme", "pk": elevation.pk})
        ).content.decode()
        assert 'badge-warn">Active<' not in detail
        assert ">Expired<" in detail
        mine = client_for(world.cast.member).get(reverse("breakglass:index", kwargs={"tenant_slug": "acme"}))
        assert 'class="badge">Active<' not in mine.content.decode()
        assert 'class="badge">Expired<' in mine.content.decode()
        incidents = client.get(reverse("breakglass:incident_list", kwargs={"tenant_slug": "acme"})).content.decode()
        assert "INC-7" not in incidents.split("Recently closed")[0]
        dashboard = client.get(reverse("tenants:dashboard", kwargs={"tenant_slug": "acme"})).content.decode()
        assert "<strong>0</strong> active elevations" in dashboard


# --- the role deleted meanwhile ---------------------------------------------------------------


def test_deleting_a_role_a_policy_grants_is_a_form_error_not_a_500(world, client_for) -> None:
    role = _custom_role(world, ["dataset.read"])
    services.policy_update(policy=world.policy, actor=world.owner, role=role)
    url = reverse("access:role_delete", kwargs={"tenant_slug": "acme", "role_id": role.pk})
    response = client_for(world.cast.owner).post(url, {"confirm": "on"})
    assert response.status_code == 400
    assert "Incident responder" in response.content.decode()
    assert Role.objects.filter(pk=role.pk).exists()


def test_deleting_a_role_an_elevation_holds_is_refused_and_the_elevation_keeps_it(world, client_for) -> None:
    role = _custom_role(world, ["dataset.read"])
    services.policy_update(policy=world.policy, actor=world.owner, role=role)
    elevation = _approve(world, ask(world), world.approver1)
    other = Role.objects.get(tenant=world.cast.acme, key="viewer", builtin=True)
    services.policy_update(policy=world.policy, actor=world.owner, role=other)
    url = reverse("access:role_delete", kwargs={"tenant_slug": "acme", "role_id": role.pk})
    response = client_for(world.cast.owner).post(url, {"confirm": "on"})
    assert response.status_code == 400
    assert f"#{elevation.pk}" in response.content.decode()
    assert Elevation.objects.get(pk=elevation.pk).role_id == role.pk
    assert decisions.can(member(world.cast, world.cast.member), "dataset.read")


def test_a_time_box_over_but_not_swept_does_not_block_a_new_request(world) -> None:
    elevation = _approve(world, ask(world, duration_minutes=5), world.approver1)
    with time_machine.travel(elevation.expires_at + timedelta(seconds=1)):
        again = ask(world)  # no worker ran: the old row still says active, but it is over
        assert again.status == Elevation.Status.PENDING


def test_the_sweep_ends_a_time_box_when_it_ended_not_when_the_worker_ran(world, client_for) -> None:
    elevation = _approve(world, ask(world, duration_minutes=5), world.approver1)
    second = services.policy_create(
        tenant=world.cast.acme,
        actor=world.owner,
        name="Second",
        role=Role.objects.get(tenant=world.cast.acme, key="viewer", builtin=True),
        approvals_required=1,
        max_duration_minutes=60,
    )
    stale = ask(world, policy=second)
    late = elevation.expires_at + timedelta(hours=3)  # the worker was down for hours
    with time_machine.travel(late):
        assert services.elevations_expire() == {"expired": 1, "lapsed": 1}
        swept = Elevation.objects.get(pk=elevation.pk)
        assert swept.ended_at == elevation.expires_at
        assert Elevation.objects.get(pk=stale.pk).ended_at == stale.pending_until
        assert selectors.elevation_window(swept) == (swept.activated_at, elevation.expires_at)


def test_member_disabled_while_elevated_gets_nothing_back_when_enabled(world) -> None:
    elevation = _approve(world, ask(world), world.approver1)
    member_set_disabled(membership=world.member, disabled=True, actor=world.owner)
    member_set_disabled(membership=member(world.cast, world.cast.member), disabled=False, actor=world.owner)
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ENDED
    assert not decisions.can(member(world.cast, world.cast.member), "dataset.write")


def test_times_that_may_be_days_away_carry_their_date(world, client_for) -> None:
    services.policy_update(policy=world.policy, actor=world.owner, pending_minutes=3 * 24 * 60)
    requested = ask(world)
    html = client_for(world.cast.owner).get(reverse("breakglass:approvals", kwargs={"tenant_slug": "acme"}))
    assert f"{requested.pending_until:%-d %b %Y %H:%M} UTC" in html.content.decode()


def test_the_timeline_says_why_the_system_ended_it(world, client_for) -> None:
    from apps.breakglass import incidents
    from tests.breakglass.webhook_helpers import deliver, generic_body, generic_headers

    hook, secret = incidents.incident_webhook_enable(tenant=world.cast.acme, actor=world.owner)
    by_webhook = _approve(world, ask(world, incident_ref="INC-9"), world.approver1)
    body = generic_body("INC-9")
    url = reverse("breakglass_webhooks:incident", args=[hook.token])
    assert deliver(url, body, generic_headers(secret, body)).status_code == 200
    by_removal = _approve(world, ask(world), world.approver1)
    member_remove(membership=member(world.cast, world.cast.member), actor=world.owner)
    client = client_for(world.cast.owner)

    def timeline(pk: int) -> str:
        url = reverse("breakglass:elevation_detail", kwargs={"tenant_slug": "acme", "pk": pk})
        return client.get(url).content.decode()

    assert "Ended early</strong>: incident INC-9 closed by the incident webhook" in timeline(by_webhook.pk)
    assert "Ended early</strong>: member removed" in timeline(by_removal.pk)


def test_role_given_an_administrative_permission_during_an_elevation_ends_it(world) -> None:
    role = _custom_role(world, ["dataset.read"])
    services.policy_update(policy=world.policy, actor=world.owner, role=role)
    elevation = _approve(world, ask(world), world.approver1)
    # An edit that adds nothing administrative leaves the elevation alone.
    access_services.role_update(role=role, name="Responder 2", permissions=["dataset.read"], actor=world.owner)
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ACTIVE
    access_services.role_update(
        role=Role.objects.get(pk=role.pk), name="Responder", permissions=["dataset.read", "member.manage"]
    )
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ENDED
    assert not decisions.can(member(world.cast, world.cast.member), "member.manage")
    end = AuditEvent.objects.get(action="breakglass.end", metadata__elevation=elevation.pk)
    assert end.metadata["reason"] == "role changed: needs more approvals"


def test_the_list_never_shows_a_window_past_the_time_box(world, client_for) -> None:
    elevation = _approve(world, ask(world, duration_minutes=5), world.approver1)
    # A row swept late by the earlier code: ended_at is the sweep's time, hours after the time box.
    Elevation.objects.filter(pk=elevation.pk).update(
        status=Elevation.Status.EXPIRED, ended_at=elevation.expires_at + timedelta(hours=3)
    )
    html = client_for(world.cast.owner).get(reverse("breakglass:elevation_list", kwargs={"tenant_slug": "acme"}))
    window = f"{elevation.activated_at:%H:%M}–{elevation.expires_at:%H:%M}"
    assert window in html.content.decode()
