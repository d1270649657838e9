"""Issue #7 item 11: a dataset's classification limits what a role-wide ``dataset.read`` reaches.

Attacker's view: an ordinary Member (whose built-in role grants ``dataset.read``
tenant-wide) lists, opens and explains the restricted payroll dataset. A
role-wide permission covers datasets only up to the role's clearance (default:
everything but restricted); restricted datasets need an explicit grant. The
rule lives in ``authorize()`` (and its list form ``restrict``), so the lists,
the detail page, the runtime decision and "explain access" all agree.
"""

from __future__ import annotations

import pytest

from apps.access import decisions, services
from apps.access.models import DeniedDecision
from apps.access.permissions import CLASSIFICATIONS
from apps.catalog import selectors
from apps.catalog.models import Dataset
from apps.tenants.models import Membership
from tests.catalog.factories import DatasetFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    cast.payroll = DatasetFactory(tenant=cast.acme, name="payroll-2026", classification="restricted")
    cast.docs = DatasetFactory(tenant=cast.acme, name="product-docs", classification="confidential")
    return cast


def _m(cast, user) -> Membership:
    """A fresh membership, as the next request would load it."""
    return Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=user)


def _names(cast, user) -> list[str]:
    return [d.name for d in selectors.dataset_list(tenant=cast.acme, subject=_m(cast, user))]


def test_classifications_match_the_dataset_model() -> None:
    assert [value for value, _ in Dataset.Classification.choices] == list(CLASSIFICATIONS)


def test_a_member_cannot_list_or_read_the_restricted_dataset(world, client_for) -> None:
    assert _names(world, world.member) == ["product-docs"]
    assert selectors.dataset_get(tenant=world.acme, subject=_m(world, world.member), pk=world.payroll.pk) is None
    decision = decisions.authorize(_m(world, world.member), "dataset.read", world.payroll, log_denial=False)
    assert not decision.allowed
    client = client_for(world.member)
    listing = client.get("/t/acme/catalog/datasets/").content.decode()
    assert "payroll-2026" not in listing
    assert "product-docs" in listing
    assert client.get(f"/t/acme/catalog/datasets/{world.payroll.pk}/").status_code == 404
    # Nor the admin: Admin is not cleared for restricted data either.
    assert _names(world, world.admin) == ["product-docs"]


def test_a_member_with_an_explicit_grant_can(world, client_for) -> None:
    services.grant_assign(action="dataset.read", obj=world.payroll, membership=_m(world, world.member))
    assert _names(world, world.member) == ["payroll-2026", "product-docs"]
    decision = decisions.authorize(_m(world, world.member), "dataset.read", world.payroll)
    assert decision.allowed
    assert client_for(world.member).get(f"/t/acme/catalog/datasets/{world.payroll.pk}/").status_code == 200


def test_a_grant_to_a_role_opens_it_for_that_role_only(world) -> None:
    steward = services.role_create(
        tenant=world.acme, key="data-steward", name="Data steward", permissions=["tenant.view"]
    )
    services.grant_assign(action="dataset.read", obj=world.payroll, role=steward)
    services.binding_create(role=steward, idp_group="hr-analytics")
    Membership.objects.filter(tenant=world.acme, user=world.viewer).update(idp_groups=["hr-analytics"])
    assert _names(world, world.viewer) == ["payroll-2026"]
    assert _names(world, world.member) == ["product-docs"]


def test_a_role_cleared_for_restricted_covers_it_tenant_wide(world) -> None:
    hr = services.role_create(
        tenant=world.acme, key="hr", name="HR", permissions=["dataset.read"], clearance="restricted"
    )
    services.binding_create(role=hr, membership=_m(world, world.viewer))
    assert _names(world, world.viewer) == ["payroll-2026", "product-docs"]
    # The owner's built-in role is the one built-in cleared for restricted data.
    assert _names(world, world.owner) == ["payroll-2026", "product-docs"]


def test_lower_clearance_narrows_further(world) -> None:
    public_only = services.role_create(
        tenant=world.acme, key="pub", name="Public readers", permissions=["dataset.read"], clearance="public"
    )
    services.binding_create(role=public_only, membership=_m(world, world.viewer))
    open_data = DatasetFactory(tenant=world.acme, name="open-data", classification="public")
    assert _names(world, world.viewer) == ["open-data"]
    assert decisions.authorize(_m(world, world.viewer), "dataset.read", open_data)
    assert not decisions.authorize(_m(world, world.viewer), "dataset.read", world.docs, log_denial=False)


def test_restrict_agrees_with_authorize_row_by_row(world) -> None:
    for classification in CLASSIFICATIONS:
        DatasetFactory(tenant=world.acme, name=f"x-{classification}", classification=classification)
    services.grant_assign(action="dataset.read", obj=world.payroll, membership=_m(world, world.admin))
    for user in (world.owner, world.admin, world.member, world.viewer):
        member = _m(world, user)
        listed = {d.pk for d in selectors.dataset_list(tenant=world.acme, subject=member)}
        decided = {
            d.pk
            for d in Dataset.objects.for_tenant(world.acme)
            if decisions.authorize(member, "dataset.read", d, log_denial=False)
        }
        assert listed == decided, user.email


def test_explain_access_names_the_rule(world, client_for) -> None:
    explain = "/t/acme/access/explain/"
    client = client_for(world.owner)
    member = _m(world, world.member)
    query = {"member": member.pk, "action": "dataset.read", "resource": f"dataset:{world.payroll.pk}"}
    page = client.get(explain, query).content.decode()
    assert 'badge-denied">Denied' in page
    assert f"dataset {world.payroll.pk} is restricted" in page
    assert "covers only datasets up to confidential" in page
    assert "restricted datasets need an explicit grant" in page
    services.grant_assign(action="dataset.read", obj=world.payroll, membership=member)
    page = client.get(explain, query).content.decode()
    assert 'badge-ok">Allowed' in page
    assert "direct grant to member: dataset.read on dataset" in page
    assert "explicit grant" in page
    docs = {"member": member.pk, "action": "dataset.read", "resource": f"dataset:{world.docs.pk}"}
    page = client.get(explain, docs).content.decode()
    assert "cleared for confidential datasets" in page
    assert not DeniedDecision.objects.filter(subject_id=str(member.pk)).exists()
