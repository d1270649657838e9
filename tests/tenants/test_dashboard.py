"""Tenant dashboard: counts, role, recent audit events only for audit.read."""

from __future__ import annotations

import pytest

from apps.tenants import services
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_dashboard_shows_counts_and_role(cast, client_for):
    MembershipFactory(tenant=cast.acme, status="invited", joined_at=None)
    MembershipFactory(tenant=cast.globex)  # other tenants never count
    page = client_for(cast.member).get("/t/acme/").content.decode()
    assert '<span class="value">4</span><span class="label">Active members</span>' in page
    assert '<span class="value">1</span><span class="label">Open invitations</span>' in page
    assert "you are <strong>member</strong>" in page


def test_recent_events_for_audit_readers_only(cast, client_for):
    services.membership_change_role(
        membership=cast.acme.memberships.get(user=cast.viewer), role="member", actor=cast.admin
    )
    admin_page = client_for(cast.admin).get("/t/acme/").content.decode()
    assert "Recent activity" in admin_page
    assert "member.role_change" in admin_page
    member_page = client_for(cast.member).get("/t/acme/").content.decode()
    assert "Recent activity" not in member_page
    assert "member.role_change" not in member_page


def test_recent_events_are_the_tenants_own(cast, client_for):
    services.membership_invite(tenant=cast.globex, email="g@example.com", actor=cast.globex_owner)
    page = client_for(cast.owner).get("/t/acme/").content.decode()
    assert "member.invite" not in page
    assert "g@example.com" not in page
