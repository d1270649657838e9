"""Issue #8 item 3: a member whose only right to a dataset or tool is an object grant sees and opens exactly those.

Attacker's view, both ways. A Viewer (no ``dataset.read`` or ``tool.execute``
tenant-wide) holds a grant on dataset X and tool T only:

- the list pages open and show X / T and nothing else; X / T open;
- another dataset Y or tool U of the same tenant answers 404, like an id of
  another tenant: a member may not learn that an object they cannot see exists;
- a Viewer without any grant gets 403 on the pages (member without the right),
  an outsider 404, as everywhere;
- a grant the same person holds in another tenant opens nothing here;
- the list's query count stays flat as granted rows grow.

The pages declare ``tenant_view(..., scope="any_object")``; the lists filter
with ``restrict()`` and the detail pages check their object.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.access import services
from apps.tenants.models import Membership
from tests.catalog.factories import DatasetFactory, ToolFactory
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

DATASETS = "/t/acme/catalog/datasets/"
TOOLS = "/t/acme/catalog/tools/"


def _viewer(cast) -> Membership:
    return Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=cast.viewer)


@pytest.fixture
def world(cast):
    services.builtin_roles_seed(tenant=cast.acme)
    cast.x = DatasetFactory(tenant=cast.acme, name="granted-dataset-x")
    cast.y = DatasetFactory(tenant=cast.acme, name="hidden-dataset-y")
    cast.t = ToolFactory(tenant=cast.acme, name="granted_tool_t")
    cast.u = ToolFactory(tenant=cast.acme, name="hidden_tool_u")
    services.grant_assign(action="dataset.read", obj=cast.x, membership=_viewer(cast))
    services.grant_assign(action="tool.execute", obj=cast.t, membership=_viewer(cast))
    return cast


def test_the_dataset_list_shows_exactly_the_granted_dataset(world, client_for) -> None:
    response = client_for(world.viewer).get(DATASETS)
    assert response.status_code == 200
    body = response.content.decode()
    assert "granted-dataset-x" in body
    assert "hidden-dataset-y" not in body


def test_the_granted_dataset_opens_and_the_other_is_not_found(world, client_for) -> None:
    client = client_for(world.viewer)
    assert client.get(f"{DATASETS}{world.x.pk}/").status_code == 200
    assert client.get(f"{DATASETS}{world.y.pk}/").status_code == 404


def test_the_tool_list_and_pages_show_exactly_the_granted_tool(world, client_for) -> None:
    client = client_for(world.viewer)
    body = client.get(TOOLS).content.decode()
    assert "granted_tool_t" in body
    assert "hidden_tool_u" not in body
    assert client.get(f"{TOOLS}{world.t.pk}/").status_code == 200
    assert client.get(f"{TOOLS}{world.u.pk}/").status_code == 404


def test_the_nav_offers_the_areas_a_grant_opens(world, client_for) -> None:
    body = client_for(world.viewer).get("/t/acme/").content.decode()
    assert DATASETS in body
    assert TOOLS in body


def test_a_grant_through_a_role_opens_the_pages_too(world, client_for) -> None:
    role = services.role_create(tenant=world.acme, key="readers", name="Readers", permissions=["tenant.view"])
    services.grant_assign(action="dataset.read", obj=world.y, role=role)
    services.binding_create(role=role, membership=Membership.objects.get(tenant=world.acme, user=world.member))
    other = Membership.objects.get(tenant=world.acme, user=world.admin)
    Membership.objects.filter(pk=other.pk).update(role="viewer")
    services.binding_create(role=role, membership=other)
    client = client_for(world.admin)
    body = client.get(DATASETS).content.decode()
    assert "hidden-dataset-y" in body
    assert "granted-dataset-x" not in body
    assert client.get(f"{DATASETS}{world.y.pk}/").status_code == 200
    assert client.get(f"{DATASETS}{world.x.pk}/").status_code == 404


def test_without_any_grant_the_pages_are_forbidden_and_outsiders_get_404(world, client_for) -> None:
    other_viewer = MembershipFactory(tenant=world.acme, role="viewer").user
    client = client_for(other_viewer)
    assert client.get(DATASETS).status_code == 403
    assert client.get(TOOLS).status_code == 403
    assert client.get(f"{DATASETS}{world.x.pk}/").status_code == 403
    outsider = client_for(world.outsider)
    assert outsider.get(DATASETS).status_code == 404
    assert outsider.get(f"{DATASETS}{world.x.pk}/").status_code == 404


def test_a_grant_in_another_tenant_opens_nothing_here(world, client_for) -> None:
    # The Globex owner is also a plain viewer of Acme and holds a grant on a Globex dataset.
    MembershipFactory(tenant=world.acme, user=world.globex_owner, role="viewer")
    theirs = DatasetFactory(tenant=world.globex, name="globex-data")
    globex_m = Membership.objects.select_related("tenant").get(tenant=world.globex, user=world.globex_owner)
    services.grant_assign(action="dataset.read", obj=theirs, membership=globex_m)
    client = client_for(world.globex_owner)
    assert client.get(DATASETS).status_code == 403
    assert client.get(f"{DATASETS}{theirs.pk}/").status_code == 403


def test_a_write_grant_does_not_open_the_read_pages(world, client_for) -> None:
    services.grant_assign(action="dataset.write", obj=world.y, membership=_viewer(world))
    body = client_for(world.viewer).get(DATASETS).content.decode()
    assert "hidden-dataset-y" not in body


def test_the_list_query_count_stays_flat_as_granted_rows_grow(world, client_for) -> None:
    client = client_for(world.viewer)
    client.get(DATASETS)  # warm the session and caches

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(DATASETS).status_code == 200
        return len(ctx.captured_queries)

    few = count()
    for n in range(15):
        dataset = DatasetFactory(tenant=world.acme, name=f"more-{n:02d}")
        services.grant_assign(action="dataset.read", obj=dataset, membership=_viewer(world))
    assert "more-14" in client.get(DATASETS).content.decode()  # the grants changed the version: reload once
    assert count() == few
