"""Break-glass cast: Acme's built-in roles seeded, two approvers, and an "Incident responder" policy."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from apps.access import permsets
from apps.access import services as access_services
from apps.access.models import Role
from apps.breakglass import services
from apps.breakglass.models import Policy
from apps.tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory


@dataclass
class World:
    cast: object
    policy: Policy
    owner: Membership
    admin: Membership
    member: Membership
    viewer: Membership
    approver1: Membership
    approver2: Membership
    globex_owner: Membership


def member(cast, user) -> Membership:
    """The membership as a request's tenant entry loads it (fresh, tenant joined)."""
    return Membership.objects.select_related("tenant", "user").get(user=user)


@pytest.fixture
def world(cast) -> World:
    permsets.clear_local_cache()
    access_services.builtin_roles_seed(tenant=cast.acme)
    access_services.builtin_roles_seed(tenant=cast.globex)
    approvers = []
    for n in (1, 2):
        user = UserFactory(email=f"approver{n}@acme.example")
        MembershipFactory(tenant=cast.acme, user=user, role="approver")
        approvers.append(user)
    owner = member(cast, cast.owner)
    # Analyst role: dataset.read and prompts, no administrative permission, so one approval is enough.
    policy = services.policy_create(
        tenant=cast.acme,
        actor=owner,
        name="Incident responder",
        role=Role.objects.get(tenant=cast.acme, key="developer", builtin=True),
        approvals_required=1,
        max_duration_minutes=120,
        requester_roles=["viewer", "member"],
        approver_roles=["approver", "owner"],
    )
    w = World(
        cast=cast,
        policy=policy,
        owner=owner,
        admin=member(cast, cast.admin),
        member=member(cast, cast.member),
        viewer=member(cast, cast.viewer),
        approver1=member(cast, approvers[0]),
        approver2=member(cast, approvers[1]),
        globex_owner=member(cast, cast.globex_owner),
    )
    yield w
    permsets.clear_local_cache()


def ask(w: World, who: Membership | None = None, **kwargs):
    policy = kwargs.pop("policy", w.policy)
    params = {"duration_minutes": 30, "justification": "prod outage, need to read the failing dataset"}
    params.update(kwargs)
    return services.elevation_request(policy=policy, requester=who or w.member, **params)
