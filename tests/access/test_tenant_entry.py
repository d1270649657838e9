"""The one tenant entry (issue #8, item 1): ``tenant_view`` resolves the membership once and runs the SSO boundary.

Before, ``TenantSSOBoundaryMiddleware`` looked the membership up and checked
the boundary, then ``tenant_view`` looked it up again. Now the boundary is an
entry step of ``tenant_view`` (``TENANT_ENTRY_CHECKS``), so it must cover every
tenant URL the middleware covered, come before the permission check, and fail
closed when the setting is missing.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver

from apps.access.decorators import TenantRequest, entry_checks, tenant_view
from apps.core import context
from tests.accounts.helpers import console_session, sso_connection

pytestmark = pytest.mark.django_db


def _walk(patterns: list, prefix: str = ""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


def test_every_tenant_url_goes_through_the_tenant_entry() -> None:
    """The boundary middleware acted on every view with a ``tenant_slug``: the entry must cover the same set."""
    routes = [(route, view) for route, view in _walk(get_resolver().url_patterns) if "<str:tenant_slug>" in route]
    assert routes, "no tenant routes found: the walk is broken"
    outside = [route for route, view in routes if not getattr(view, "tenant_entry", False)]
    assert outside == []


def test_no_middleware_resolves_the_tenant(settings) -> None:
    assert not [name for name in settings.MIDDLEWARE if "TenantSSOBoundary" in name]
    assert "apps.sso.views.entry.sso_boundary" in settings.TENANT_ENTRY_CHECKS


def test_the_membership_is_loaded_once_per_request(cast) -> None:
    client = console_session(cast.owner, method="password")
    client.get("/t/acme/members/")
    with CaptureQueriesContext(connection) as queries:
        assert client.get("/t/acme/members/").status_code == 200
    lookups = [q["sql"] for q in queries.captured_queries if '"tenants_tenant"."slug" = ' in q["sql"]]
    assert len(lookups) == 1, lookups


def test_a_foreign_idp_session_is_stepped_up_before_the_permission_check(cast) -> None:
    """A viewer from Globex's IdP asking for an admin page of Acme is sent to Acme's way in, not told 403."""
    sso_connection(cast.globex)
    client = console_session(cast.viewer, method="saml", tenant_id=cast.globex.pk)

    response = client.get("/t/acme/access/roles/")

    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert location.path == "/sso/step-up/"
    assert parse_qs(location.query) == {"tenant": ["acme"], "next": ["/t/acme/access/roles/"]}


def test_a_foreign_idp_session_cannot_write_through_htmx(cast) -> None:
    """An htmx POST gets ``HX-Redirect`` to the step-up page (no ``next``: a fragment is no page) and no write."""
    sso_connection(cast.globex)
    client = console_session(cast.owner, method="saml", tenant_id=cast.globex.pk)

    response = client.post("/t/acme/members/invite/", {"email": "x@evil.example"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 204
    assert response["HX-Redirect"] == "/sso/step-up/?tenant=acme"
    assert not cast.acme.memberships.filter(user__email="x@evil.example").exists()


def test_a_missing_entry_setting_fails_closed(cast, settings) -> None:
    """Without ``TENANT_ENTRY_CHECKS`` the console does not open (it would skip the SSO boundary)."""
    client = console_session(cast.owner, method="password")
    del settings.TENANT_ENTRY_CHECKS
    entry_checks.cache_clear()  # a deleted setting sends no setting_changed
    try:
        with pytest.raises(ImproperlyConfigured):
            client.get("/t/acme/")
    finally:
        entry_checks.cache_clear()


def test_the_view_gets_a_tenant_request_whose_can_shares_the_memo(cast, rf) -> None:
    seen: dict = {}

    @tenant_view("tenant.view")
    def page(request: TenantRequest):
        from django.http import HttpResponse

        seen["tenant"], seen["membership"] = request.tenant, request.membership
        with CaptureQueriesContext(connection) as queries:
            seen["roles"] = request.can("role.manage")
            seen["audit"] = request.can("audit.read")
        seen["queries"] = len(queries)
        return HttpResponse("ok")

    for who, allowed in (("owner", True), ("viewer", False)):
        request = rf.get("/t/acme/")
        request.user = getattr(cast, who)
        request.session = Client().session
        with context.bind():  # no middleware here: keep the entry's tenant out of later tests' context
            assert page(request, tenant_slug="acme").status_code == 200
        assert seen["tenant"] == cast.acme
        assert seen["membership"].user == getattr(cast, who)
        assert seen["roles"] is allowed
        assert seen["queries"] == 0  # the permission set the entry loaded answers
