"""The dashboard's "set up SSO" prompt for owners and admins of a tenant without working SSO."""

from __future__ import annotations

import pytest
from django.template.loader import render_to_string

from apps.tenants.models import Membership
from tests.accounts.helpers import sso_connection

pytestmark = pytest.mark.django_db

PARTIAL = "account/partials/_sso_prompt.html"


def _render(cast, who: str) -> str:
    membership = Membership.objects.get(tenant=cast.acme, user=getattr(cast, who))
    return render_to_string(PARTIAL, {"current_tenant": cast.acme, "current_membership": membership})


@pytest.mark.parametrize("who", ["owner", "admin"])
def test_owners_and_admins_are_prompted_while_the_tenant_has_no_sso(cast, who):
    html = _render(cast, who)
    assert "Set up single sign-on for Acme Corp" in html
    assert 'href="/t/acme/settings/sso/"' in html


@pytest.mark.parametrize("who", ["member", "viewer"])
def test_members_see_no_prompt(cast, who):
    assert _render(cast, who).strip() == ""


def test_a_draft_connection_keeps_the_prompt_an_enabled_one_ends_it(cast):
    connection = sso_connection(cast.acme, status="draft")
    assert "Set up single sign-on" in _render(cast, "owner")
    connection.status = "enabled"
    connection.save()
    assert _render(cast, "owner").strip() == ""


def test_no_prompt_outside_a_tenant(cast):
    assert render_to_string(PARTIAL, {}).strip() == ""
