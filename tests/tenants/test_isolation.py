"""Tenant isolation and bad input on every console URL that takes an id or a slug."""

from __future__ import annotations

import pytest
from django.urls import URLPattern, get_resolver

from apps.tenants import urls as tenant_urls
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db


def _id_routes() -> list[str]:
    """Every tenant console route with a membership id, as a format string."""
    routes = []
    for pattern in tenant_urls.urlpatterns:
        assert isinstance(pattern, URLPattern)
        route = str(pattern.pattern)
        if "<int:membership_id>" in route:
            routes.append("/t/acme/" + route.replace("<int:membership_id>", "{id}"))
    return routes


def test_the_route_walk_sees_the_member_actions():
    assert len(_id_routes()) >= 5


@pytest.mark.parametrize("route", _id_routes())
@pytest.mark.parametrize("method", ["get", "post"])
def test_other_tenants_membership_id_is_404(cast, client_for, route, method):
    """The acme owner may do everything in acme, yet globex's membership ids do not exist for them."""
    globex_membership = Membership.objects.get(tenant=cast.globex, user=cast.globex_owner)
    client = client_for(cast.owner)
    response = getattr(client, method)(route.format(id=globex_membership.pk), {"role": "viewer"})
    assert response.status_code == 404
    globex_membership.refresh_from_db()
    assert (globex_membership.role, globex_membership.status) == ("owner", "active")


@pytest.mark.parametrize("route", _id_routes())
@pytest.mark.parametrize("ident", ["0", "999999999", "99999999999999999999999"])
def test_unknown_or_huge_ids_are_404(cast, client_for, route, ident):
    assert client_for(cast.owner).get(route.format(id=ident)).status_code == 404


@pytest.mark.parametrize(
    "path",
    [
        "/t/UPPER/",
        "/t/a..b/",
        "/t/-acme/",
        "/t/acme-/",
        "/t/" + "a" * 300 + "/",
        "/t/%00/",
        "/t/acme%20/",
        "/t/ACME/members/",
        "/t/nope/members/",
        "/t/globex/members/",
    ],
)
def test_unknown_and_malformed_slugs_are_404(cast, client_for, path):
    assert client_for(cast.owner).get(path).status_code == 404


def test_unknown_slug_and_non_member_look_the_same(cast, client_for):
    client = client_for(cast.owner)
    assert client.get("/t/globex/").content.count(b"Page not found") == client.get("/t/nope/").content.count(
        b"Page not found"
    )


def test_urls_resolve_under_the_tenant_prefix():
    resolver = get_resolver()
    match = resolver.resolve("/t/acme/members/5/role/")
    assert match.kwargs == {"tenant_slug": "acme", "membership_id": 5}
