"""Issue #7 item 15: object grants given directly to a member leave with the membership.

Attacker's view: a person held ``dataset.read`` on one dataset through a
direct grant, was removed, and is invited again (as a plain viewer, by someone
who never meant to give that grant back). Before the fix the guardian row
survived the removal and the old grant came back with the new membership.
"""

from __future__ import annotations

import pytest

from apps.access import decisions, members, services
from apps.audit.models import AuditEvent
from apps.catalog.models import Dataset, Tool
from apps.tenants.models import Membership
from apps.tenants.services import TenantError

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    cast.secret = Dataset.objects.create(tenant=cast.acme, name="secret", classification="restricted")
    cast.tool = Tool.objects.create(tenant=cast.acme, name="shell")
    cast.globex_data = Dataset.objects.create(tenant=cast.globex, name="globex-data")
    viewer_m = Membership.objects.get(tenant=cast.acme, user=cast.viewer)
    services.grant_assign(action="dataset.read", obj=cast.secret, membership=viewer_m)
    services.grant_assign(action="tool.execute", obj=cast.tool, membership=viewer_m)
    # The same person is also a member of Globex, with a grant there that must stay.
    cast.globex_m = Membership.objects.create(tenant=cast.globex, user=cast.viewer, role="viewer", status="active")
    services.grant_assign(action="dataset.read", obj=cast.globex_data, membership=cast.globex_m)
    return cast


def _member(cast, user) -> Membership:
    return Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=user)


def _viewer(cast) -> Membership | None:
    return Membership.objects.select_related("tenant", "user").filter(tenant=cast.acme, user=cast.viewer).first()


def test_removal_takes_the_direct_grants_and_re_invitation_does_not_bring_them_back(world, client_for) -> None:
    viewer = _viewer(world)
    response = client_for(world.admin).post(f"/t/acme/members/{viewer.pk}/remove/")
    assert response.status_code == 302
    assert _viewer(world) is None

    members.member_invite(tenant=world.acme, email=world.viewer.email, role="viewer", actor=_member(world, world.owner))
    Membership.objects.filter(tenant=world.acme, user=world.viewer).update(status="active")
    again = _viewer(world)
    assert not decisions.authorize(again, "dataset.read", world.secret, log_denial=False)
    assert not decisions.authorize(again, "tool.execute", world.tool, log_denial=False)
    # Globex's grant to the same person is Globex's business and stays.
    globex_m = Membership.objects.select_related("tenant").get(pk=world.globex_m.pk)
    assert decisions.authorize(globex_m, "dataset.read", world.globex_data, log_denial=False)


def test_the_revocation_is_audited(world) -> None:
    members.member_remove(membership=_viewer(world), actor=_member(world, world.owner))
    event = AuditEvent.objects.for_tenant(world.acme).get(action="grant.revoke_all")
    assert event.metadata["email"] == world.viewer.email
    assert {(g["action"], g["type"]) for g in event.metadata["grants"]} == {
        ("dataset.read", "dataset"),
        ("tool.execute", "tool"),
    }


def test_a_refused_removal_keeps_the_grants(world) -> None:
    # A member cannot remove themselves: nothing is removed, grants included.
    viewer = _viewer(world)
    with pytest.raises(TenantError):
        members.member_remove(membership=viewer, actor=viewer)
    assert decisions.authorize(_viewer(world), "dataset.read", world.secret, log_denial=False)
