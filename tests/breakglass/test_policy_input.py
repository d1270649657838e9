"""Oversized policy input through the pages: a form error, never a 500, nothing saved (#11 review)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.access.models import Role
from apps.breakglass import services
from apps.breakglass.models import Policy
from apps.breakglass.services import BreakglassError

pytestmark = pytest.mark.django_db


def _post(world, client_for, **overrides):
    role = Role.objects.get(tenant=world.cast.acme, key="developer", builtin=True)
    data = {"name": "New", "role": role.pk, "max_duration_minutes": 30, "approvals_required": 1, "pending_minutes": 10}
    data.update(overrides)
    url = reverse("breakglass:policy_create", kwargs={"tenant_slug": "acme"})
    return client_for(world.cast.owner).post(url, data)


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        ({"pending_minutes": 999_999_999_999}, "Decide within"),
        ({"pending_minutes": 20_000}, "Decide within"),
        ({"requester_groups": "g" * 201}, "200 characters"),
        ({"approver_groups": "\n".join(f"group-{n}" for n in range(101))}, "100 groups"),
        ({"max_duration_minutes": 999_999_999_999}, "must be between 1 minute and"),
    ],
)
def test_oversized_policy_input_is_a_form_error(world, client_for, overrides, says) -> None:
    before = Policy.objects.count()
    response = _post(world, client_for, **overrides)
    assert response.status_code == 200
    assert says in response.content.decode()
    assert Policy.objects.count() == before


def test_the_service_refuses_oversized_values_too(world) -> None:
    with pytest.raises(BreakglassError, match="lifetime"):
        services.policy_update(policy=world.policy, actor=world.owner, pending_minutes=10**12)
    with pytest.raises(BreakglassError, match="200 characters"):
        services.policy_update(policy=world.policy, actor=world.owner, approver_groups=["x" * 201])


def test_the_request_service_refuses_oversized_text_instead_of_cutting_it(world) -> None:
    from tests.breakglass.conftest import ask

    with pytest.raises(BreakglassError, match="justification"):
        ask(world, justification="x" * 2001)
    with pytest.raises(BreakglassError, match="incident reference"):
        ask(world, incident_ref="INC-" + "9" * 100)
