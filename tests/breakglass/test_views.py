"""Break-glass console pages: the permission contract, and the flow through the pages."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.access import decisions
from apps.access.models import Role
from apps.breakglass.models import Approval, Elevation, IncidentClosure, IncidentWebhook, Policy
from tests.breakglass.conftest import ask, member
from tests.contract import PageContract, PermissionContract, Ref, form_page

pytestmark = pytest.mark.django_db

POLICY_DATA = {
    "role": Ref("policy.role"),
    "max_duration_minutes": "45",
    "approvals_required": "1",
    "pending_minutes": "30",
    "approver_roles": "owner",
    "approver_groups": "oncall-leads",
}
ELEVATION = {"kwargs": {"pk": Ref("pending")}, "foreign": ({"pk": Ref("globex_elevation")},)}


@pytest.fixture
def pages_world(world):
    """The cast, plus a pending Acme request and Globex's policy and request (what ``Ref`` names)."""
    cast = world.cast
    globex_policy = Policy.objects.create(
        tenant=cast.globex,
        name="Globex responder",
        role=Role.objects.get(tenant=cast.globex, key="analyst", builtin=True),
        approvals_required=1,
        max_duration_minutes=60,
    )
    now = timezone.now()
    cast.policy = world.policy
    cast.globex_policy = globex_policy
    cast.globex_elevation = Elevation.objects.create(
        tenant=cast.globex,
        policy=globex_policy,
        requester=world.globex_owner,
        role=globex_policy.role,
        duration_minutes=10,
        justification="x",
        approvals_required=1,
        requested_at=now,
        pending_until=now + timezone.timedelta(hours=1),
    )
    cast.pending = ask(world)
    return cast


class TestBreakglassPagesContract(PermissionContract):
    app_namespace = "breakglass"
    contracts = (
        PageContract("breakglass:index", "breakglass.request"),
        PageContract(
            "breakglass:request_create",
            "breakglass.request",
            method="post",
            kwargs={"policy_id": Ref("policy")},
            data={"duration_minutes": "10", "justification": "on call"},
            ok_status=302,
            foreign=({"policy_id": Ref("globex_policy")},),
        ),
        PageContract("breakglass:approvals", "breakglass.approve"),
        PageContract("breakglass:approve", "breakglass.approve", method="post", ok_status=302, **ELEVATION),
        PageContract("breakglass:deny", "breakglass.approve", method="post", ok_status=302, **ELEVATION),
        PageContract("breakglass:end", "tenant.view", method="post", ok_status=302, **ELEVATION),
        PageContract("breakglass:policy_list", "role.manage"),
        # A member holding only role.manage passes the gate; the service refuses (no breakglass.approve).
        *form_page(
            "breakglass:policy_create", "role.manage", data={**POLICY_DATA, "name": "Night shift"}, only_status=200
        ),
        *form_page(
            "breakglass:policy_edit",
            "role.manage",
            kwargs={"policy_id": Ref("policy")},
            data={**POLICY_DATA, "name": "Incident responder"},
            only_status=200,
            foreign=({"policy_id": Ref("globex_policy")},),
        ),
        # Review (#11, item 7): audit.read, like the audit log it shows.
        PageContract("breakglass:elevation_list", "audit.read"),
        PageContract("breakglass:elevation_detail", "audit.read", **ELEVATION),
        # Never active: the export has nothing to give and sends the reader back to the page.
        PageContract(
            "breakglass:elevation_export",
            "audit.read",
            kwargs={"pk": Ref("pending"), "fmt": "csv"},
            foreign=({"pk": Ref("globex_elevation")},),
            ok_status=302,
        ),
        # Incidents (#11, item 5).
        PageContract("breakglass:incident_list", "breakglass.approve"),
        PageContract(
            "breakglass:incident_close",
            "tenant.view",
            method="post",
            data={"incident_ref": "INC-404"},
            ok_status=302,
        ),
        PageContract("breakglass:incident_webhook", "role.manage"),
        # A member holding only role.manage passes the gate; the service refuses (no breakglass.approve).
        PageContract(
            "breakglass:incident_webhook",
            "role.manage",
            method="post",
            data={"action": "enable"},
            ok_status=200,
            only_status=302,
        ),
        PageContract(
            "breakglass:policy_pause",
            "role.manage",
            method="post",
            kwargs={"policy_id": Ref("policy")},
            data={"paused": "1"},
            ok_status=302,
            foreign=({"policy_id": Ref("globex_policy")},),
        ),
    )

    @pytest.fixture
    def contract_world(self, pages_world):
        return pages_world

    def state(self, world):
        return (
            super().state(world),
            tuple(Elevation.objects.order_by("pk").values_list("pk", "tenant_id", "status")),
            tuple(Approval.objects.order_by("pk").values_list("pk", "elevation_id", "decision")),
            tuple(
                Policy.objects.order_by("pk").values_list("pk", "tenant_id", "name", "paused", "max_duration_minutes")
            ),
            tuple(IncidentWebhook.objects.order_by("pk").values_list("pk", "tenant_id", "secret_encrypted")),
            tuple(IncidentClosure.objects.order_by("pk").values_list("pk", "tenant_id", "incident_ref")),
        )


def test_request_approve_and_end_through_the_pages(world, client_for, django_capture_on_commit_callbacks) -> None:
    acme = {"tenant_slug": "acme"}
    requester = client_for(world.cast.member)
    with django_capture_on_commit_callbacks(execute=True):
        response = requester.post(
            reverse("breakglass:request_create", kwargs={**acme, "policy_id": world.policy.pk}),
            {"duration_minutes": "15", "justification": "database on fire", "incident_ref": ""},
        )
    assert response.status_code == 302
    elevation = Elevation.objects.get()
    approver = client_for(world.approver1.user)
    page = approver.get(reverse("breakglass:approvals", kwargs=acme))
    assert "database on fire" in page.content.decode()
    # The requester cannot approve their own request through the page either.
    refused = requester.post(reverse("breakglass:approve", kwargs={**acme, "pk": elevation.pk}))
    assert refused.status_code == 403  # a member does not hold breakglass.approve at all
    approver.post(reverse("breakglass:approve", kwargs={**acme, "pk": elevation.pk}), {"comment": "ok"})
    elevation.refresh_from_db()
    assert elevation.status == Elevation.Status.ACTIVE
    assert decisions.can(member(world.cast, world.cast.member), "dataset.write")
    requester.post(reverse("breakglass:end", kwargs={**acme, "pk": elevation.pk}))
    elevation.refresh_from_db()
    assert elevation.status == Elevation.Status.ENDED
    assert not decisions.can(member(world.cast, world.cast.member), "dataset.write")


def test_over_cap_request_through_the_page_saves_nothing(world, client_for) -> None:
    response = client_for(world.cast.member).post(
        reverse("breakglass:request_create", kwargs={"tenant_slug": "acme", "policy_id": world.policy.pk}),
        {"duration_minutes": "999", "justification": "please"},
        follow=True,
    )
    assert "between 1 and 120" in response.content.decode()
    assert not Elevation.objects.exists()


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"duration_minutes": "0", "justification": "please"}, "Duration (minutes): Ensure this value is greater than"),
        ({"duration_minutes": "abc", "justification": "please"}, "Duration (minutes): Enter a whole number."),
        ({"duration_minutes": "30", "justification": ""}, "Justification: This field is required."),
        ({"duration_minutes": "30", "justification": "x" * 2001}, "Justification: Ensure this value has at most 2000"),
        ({"duration_minutes": "30", "justification": "ok", "incident_ref": "I" * 101}, "Incident reference: Ensure"),
    ],
)
def test_bad_request_input_names_the_field_and_saves_nothing(world, client_for, data, says) -> None:
    response = client_for(world.cast.member).post(
        reverse("breakglass:request_create", kwargs={"tenant_slug": "acme", "policy_id": world.policy.pk}),
        data,
        follow=True,
    )
    assert says in response.content.decode().replace("&#x27;", "'")
    assert not Elevation.objects.exists()
