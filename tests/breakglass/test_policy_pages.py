"""Policy pages from the attacker's side: what the services refuse comes back as a form error, nothing saved."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.access.models import Role
from apps.audit.models import AuditEvent
from apps.breakglass.models import Policy

pytestmark = pytest.mark.django_db

ACME = {"tenant_slug": "acme"}


def _data(role: Role, **overrides: str) -> dict[str, str]:
    data = {
        "name": "Night shift",
        "role": str(role.pk),
        "max_duration_minutes": "60",
        "approvals_required": "1",
        "pending_minutes": "30",
        "requester_roles": "member",
        "approver_roles": "owner",
        "approver_groups": "oncall-leads\n sre ,",
    }
    data.update(overrides)
    return data


def _role(tenant, key: str) -> Role:
    return Role.objects.get(tenant=tenant, key=key, builtin=True)


def test_create_edit_and_pause_through_the_pages(world, client_for) -> None:
    owner = client_for(world.cast.owner)
    response = owner.post(reverse("breakglass:policy_create", kwargs=ACME), _data(_role(world.cast.acme, "analyst")))
    assert response.status_code == 302
    policy = Policy.objects.get(name="Night shift")
    assert policy.approver_groups == ["oncall-leads", "sre"]
    assert policy.requester_roles == ["member"]
    edit = reverse("breakglass:policy_edit", kwargs={**ACME, "policy_id": policy.pk})
    assert "oncall-leads" in owner.get(edit).content.decode()
    owner.post(edit, _data(_role(world.cast.acme, "analyst"), max_duration_minutes="90"))
    owner.post(reverse("breakglass:policy_pause", kwargs={**ACME, "policy_id": policy.pk}), {"paused": "1"})
    policy.refresh_from_db()
    assert (policy.max_duration_minutes, policy.paused) == (90, True)
    page = owner.get(reverse("breakglass:policy_list", kwargs=ACME)).content.decode()
    assert "Paused" in page
    assert "Resume" in page
    actions = list(AuditEvent.objects.filter(action__startswith="breakglass.policy").values_list("action", flat=True))
    assert actions.count("breakglass.policy_update") == 2
    assert "breakglass.policy_create" in actions


def test_admin_cannot_offer_billing_through_the_page(world, client_for) -> None:
    before = AuditEvent.objects.count()
    response = client_for(world.cast.admin).post(
        reverse("breakglass:policy_create", kwargs=ACME),
        _data(_role(world.cast.acme, "billing"), approvals_required="2"),
    )
    assert response.status_code == 200
    assert "billing.manage" in response.content.decode()
    assert not Policy.objects.filter(name="Night shift").exists()
    assert AuditEvent.objects.count() == before


def test_admin_cannot_widen_an_existing_policy_to_billing(world, client_for) -> None:
    response = client_for(world.cast.admin).post(
        reverse("breakglass:policy_edit", kwargs={**ACME, "policy_id": world.policy.pk}),
        _data(_role(world.cast.acme, "billing"), name="Incident responder", approvals_required="2"),
    )
    assert response.status_code == 200
    world.policy.refresh_from_db()
    assert world.policy.role.key == "developer"


def test_another_tenants_role_is_not_a_choice(world, client_for) -> None:
    response = client_for(world.cast.owner).post(
        reverse("breakglass:policy_create", kwargs=ACME), _data(_role(world.cast.globex, "analyst"))
    )
    assert response.status_code == 200
    assert not Policy.objects.filter(name="Night shift").exists()


@pytest.mark.parametrize(
    ("key", "overrides", "says"),
    [
        ("admin", {"approvals_required": "1"}, "at least 2 approvals"),
        ("analyst", {"approvals_required": "4"}, "less than or equal to 3"),
        ("analyst", {"max_duration_minutes": "100000"}, "between 1 minute and"),
        ("analyst", {"name": "incident RESPONDER"}, "exists"),
    ],
)
def test_rules_come_back_as_form_errors(world, client_for, key, overrides, says) -> None:
    count = Policy.objects.count()
    response = client_for(world.cast.owner).post(
        reverse("breakglass:policy_create", kwargs=ACME), _data(_role(world.cast.acme, key), **overrides)
    )
    assert response.status_code == 200
    assert says in response.content.decode()
    assert Policy.objects.count() == count


def test_a_paused_policy_is_not_offered_to_requesters(world, client_for) -> None:
    client_for(world.cast.owner).post(
        reverse("breakglass:policy_pause", kwargs={**ACME, "policy_id": world.policy.pk}), {"paused": "1"}
    )
    page = client_for(world.cast.member).get(reverse("breakglass:index", kwargs=ACME)).content.decode()
    assert "Incident responder" not in page
