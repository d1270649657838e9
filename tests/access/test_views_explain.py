"""Explain access: the decision and its path for a member, an action and an optional dataset or tool."""

from __future__ import annotations

import pytest

from apps.access import services
from apps.access.models import DeniedDecision
from apps.catalog.models import Dataset, Tool
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db

EXPLAIN = "/t/acme/access/explain/"


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    services.builtin_roles_seed(tenant=cast.globex)
    # Confidential: these tests are about grant mechanics; restricted data has its own tests (test_restricted_data.py).
    cast.payroll = Dataset.objects.create(tenant=cast.acme, name="payroll", classification="confidential")
    cast.search = Tool.objects.create(tenant=cast.acme, name="web-search", allowlisted=True)
    cast.globex_data = Dataset.objects.create(tenant=cast.globex, name="globex-secrets")
    cast.viewer_m = Membership.objects.get(tenant=cast.acme, user=cast.viewer)
    return cast


def _ask(client, member: Membership, action: str, resource: str = "") -> str:
    response = client.get(EXPLAIN, {"member": member.pk, "action": action, "resource": resource})
    assert response.status_code == 200, response.content.decode()
    return response.content.decode()


def test_blank_form_is_shown_without_a_decision(world, client_for):
    page = client_for(world.admin).get(EXPLAIN).content.decode()
    assert 'name="member"' in page
    assert "Why it is" not in page
    assert "globex-secrets" not in page
    assert "owner@globex.example" not in page


def test_allowed_through_a_role_grant_on_the_object(world, client_for):
    role = services.role_create(tenant=world.acme, key="payroll", name="Payroll", permissions=["tenant.view"])
    services.grant_assign(action="dataset.read", obj=world.payroll, role=role)
    services.binding_create(role=role, membership=world.viewer_m)
    page = _ask(client_for(world.admin), world.viewer_m, "dataset.read", f"dataset:{world.payroll.pk}")
    assert 'badge-ok">Allowed' in page
    assert f"grant to role Payroll (assigned): dataset.read on dataset {world.payroll.pk}" in page
    roles = page[page.index("Roles of viewer@acme.example") :]
    assert "Viewer" in roles  # membership role
    assert "Payroll" in roles  # assigned


def test_allowed_through_a_direct_member_grant(world, client_for):
    services.grant_assign(action="tool.execute", obj=world.search, membership=world.viewer_m)
    page = _ask(client_for(world.admin), world.viewer_m, "tool.execute", f"tool:{world.search.pk}")
    assert "Allowed" in page
    assert f"direct grant to member: tool.execute on tool {world.search.pk}" in page


def test_allowed_tenant_wide_through_the_membership_role_and_a_group(world, client_for):
    role = services.role_create(tenant=world.acme, key="finance", name="Finance", permissions=["billing.view"])
    services.binding_create(role=role, idp_group="finance-team")
    Membership.objects.filter(pk=world.viewer_m.pk).update(idp_groups=["finance-team", "everyone"])
    page = _ask(client_for(world.admin), world.viewer_m, "billing.view")
    assert "role Finance (group finance-team) grants billing.view tenant-wide" in page
    assert "<code>finance-team</code>" in page
    other_groups = page[page.index("Other IdP groups") :]
    assert "<code>everyone</code>" in other_groups[: other_groups.index("</dd>")]
    member = Membership.objects.get(tenant=world.acme, user=world.member)
    assert "role Member (membership role) grants dataset.read tenant-wide" in _ask(
        client_for(world.admin), member, "dataset.read"
    )


def test_denial_is_explained_and_not_logged(world, client_for):
    page = _ask(client_for(world.admin), world.viewer_m, "dataset.read", f"dataset:{world.payroll.pk}")
    assert 'badge-denied">Denied' in page
    assert f"no role grants dataset.read and no grant on dataset {world.payroll.pk}" in page
    page = _ask(client_for(world.admin), world.viewer_m, "billing.manage")
    assert "no role grants billing.manage" in page
    assert not DeniedDecision.objects.filter(subject_id=str(world.viewer_m.pk)).exists()


def test_disabled_member_is_denied_with_the_reason(world, client_for):
    Membership.objects.filter(pk=world.viewer_m.pk).update(status="disabled")
    page = _ask(client_for(world.admin), world.viewer_m, "tenant.view")
    assert "membership is disabled" in page


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"member": "{globex}", "action": "dataset.read"}, "Choose a member of this tenant."),
        ({"member": "abc", "action": "dataset.read"}, "Choose a member of this tenant."),
        ({"member": "99999999999999999999999", "action": "dataset.read"}, "Choose a member of this tenant."),
        ({"member": "{viewer}", "action": "nuke.all"}, "Choose an action from the permission catalog."),
        ({"member": "{viewer}", "action": "dataset.read", "resource": "dataset:{gdata}"}, "Choose a dataset or tool"),
        ({"member": "{viewer}", "action": "dataset.read", "resource": "dataset:x"}, "Choose a dataset or tool"),
        ({"member": "{viewer}", "action": "tool.execute", "resource": "dataset:{payroll}"}, "applies to tools"),
        ({"action": "dataset.read"}, "Choose a member."),
    ],
)
def test_bad_input_is_a_form_error_not_a_crash(world, client_for, params, message):
    globex = Membership.objects.get(tenant=world.globex, user=world.globex_owner)
    values = {
        "globex": globex.pk,
        "viewer": world.viewer_m.pk,
        "gdata": world.globex_data.pk,
        "payroll": world.payroll.pk,
    }
    params = {key: value.format(**values) for key, value in params.items()}
    response = client_for(world.admin).get(EXPLAIN, params)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert "Why it is" not in response.content.decode()
