"""Issue #7 item 2: ``member.manage`` must not hand out a built-in role stronger than the actor's own.

Attacker's view: someone who may manage members (a custom role with only
``member.manage``, or an Admin) tries to invite, promote, re-enable or re-send
an invitation for a role carrying permissions they do not hold. The services
refuse (not only the forms), and the console neither offers nor accepts it.
"""

from __future__ import annotations

import pytest

from apps.access import members, services
from apps.access.models import Role
from apps.access.services import AccessError
from apps.catalog.models import Dataset
from apps.tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory

pytestmark = pytest.mark.django_db

MEMBERS = "/t/acme/members/"


@pytest.fixture
def acme(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    # A helpdesk person: viewer by membership, plus a custom role holding member.manage only.
    cast.helpdesk = UserFactory(email="helpdesk@acme.example")
    helpdesk_m = MembershipFactory(tenant=cast.acme, user=cast.helpdesk, role="viewer")
    role = services.role_create(tenant=cast.acme, key="helpdesk", name="Helpdesk", permissions=["member.manage"])
    services.binding_create(role=role, membership=helpdesk_m)
    cast.target = UserFactory(email="target@acme.example")
    cast.target_m = MembershipFactory(tenant=cast.acme, user=cast.target, role="viewer")
    return cast


def _actor(cast, user) -> Membership:
    return Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=user)


def _role_of(cast, email: str) -> str | None:
    return Membership.objects.filter(tenant=cast.acme, user__email=email).values_list("role", flat=True).first()


def test_member_manage_alone_cannot_invite_an_admin(acme) -> None:
    with pytest.raises(AccessError, match="do not hold"):
        members.member_invite(
            tenant=acme.acme, email="mole@evil.example", role="admin", actor=_actor(acme, acme.helpdesk)
        )
    assert _role_of(acme, "mole@evil.example") is None


def test_member_manage_alone_cannot_promote_someone_to_admin(acme) -> None:
    with pytest.raises(AccessError, match="do not hold"):
        members.member_change_role(membership=acme.target_m, role="admin", actor=_actor(acme, acme.helpdesk))
    assert _role_of(acme, "target@acme.example") == "viewer"


def test_member_manage_alone_may_hand_out_what_it_holds(acme) -> None:
    # A viewer-with-helpdesk holds everything the Viewer role carries: that stays possible.
    membership = members.member_invite(
        tenant=acme.acme, email="new@acme.example", role="viewer", actor=_actor(acme, acme.helpdesk)
    )
    assert membership.role == "viewer"


def test_admin_cannot_invite_or_make_someone_billing(acme) -> None:
    with pytest.raises(AccessError, match=r"billing\.manage"):
        members.member_invite(
            tenant=acme.acme, email="payer@acme.example", role="billing", actor=_actor(acme, acme.admin)
        )
    with pytest.raises(AccessError, match=r"billing\.manage"):
        members.member_change_role(membership=acme.target_m, role="billing", actor=_actor(acme, acme.admin))
    assert _role_of(acme, "payer@acme.example") is None
    assert _role_of(acme, "target@acme.example") == "viewer"


def test_re_enabling_or_resending_hands_the_role_out_again(acme) -> None:
    # The owner had made the target an admin and disabled them; the helpdesk may not bring them back.
    Membership.objects.filter(pk=acme.target_m.pk).update(role="admin", status="disabled")
    target = Membership.objects.get(pk=acme.target_m.pk)
    with pytest.raises(AccessError):
        members.member_set_disabled(membership=target, disabled=False, actor=_actor(acme, acme.helpdesk))
    assert Membership.objects.get(pk=target.pk).status == "disabled"
    invited = members.member_invite(
        tenant=acme.acme, email="boss@acme.example", role="admin", actor=_actor(acme, acme.owner)
    )
    with pytest.raises(AccessError):
        members.member_resend(membership=invited, actor=_actor(acme, acme.helpdesk))


def test_a_role_carrying_an_object_grant_needs_that_grant_too(acme) -> None:
    # The tenant gave the built-in Analyst role a write grant on one dataset. A member-role actor
    # with member.manage holds every Analyst permission, but not that grant: no Analyst from them.
    dataset = Dataset.objects.create(tenant=acme.acme, name="ledger")
    services.grant_assign(
        action="dataset.write", obj=dataset, role=Role.objects.for_tenant(acme.acme).get(key="analyst")
    )
    manager = UserFactory(email="manager@acme.example")
    manager_m = MembershipFactory(tenant=acme.acme, user=manager, role="member")
    services.binding_create(role=Role.objects.for_tenant(acme.acme).get(key="helpdesk"), membership=manager_m)
    with pytest.raises(AccessError, match=r"dataset\.write on dataset"):
        members.member_invite(tenant=acme.acme, email="a2@acme.example", role="analyst", actor=manager_m)
    # The admin holds dataset.write tenant-wide, so may.
    members.member_invite(tenant=acme.acme, email="a1@acme.example", role="analyst", actor=_actor(acme, acme.admin))


def test_console_neither_offers_nor_accepts_a_stronger_role(acme, client_for) -> None:
    client = client_for(acme.helpdesk)
    page = client.get(MEMBERS).content.decode()
    invite_form = page[page.index('name="email"') :]
    invite_form = invite_form[: invite_form.index("</form>")]
    assert 'value="admin"' not in invite_form
    assert 'value="viewer"' in invite_form
    response = client.post(f"{MEMBERS}invite/", {"email": "mole@evil.example", "role": "admin"})
    assert response.status_code == 400
    assert _role_of(acme, "mole@evil.example") is None
    response = client.post(f"{MEMBERS}{acme.target_m.pk}/role/", {"role": "admin"})
    assert response.status_code == 400
    assert _role_of(acme, "target@acme.example") == "viewer"
    # Admin and Billing through the console.
    response = client_for(acme.admin).post(f"{MEMBERS}invite/", {"email": "payer@acme.example", "role": "billing"})
    assert response.status_code == 400
    assert _role_of(acme, "payer@acme.example") is None
