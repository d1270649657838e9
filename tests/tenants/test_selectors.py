"""Tenant reads: scoped to the tenant, counts right, malformed input is simply "nothing"."""

from __future__ import annotations

import pytest

from apps.tenants import selectors
from apps.tenants.models import Membership
from tests.factories import MembershipFactory, TenantFactory

pytestmark = pytest.mark.django_db


def test_member_counts(cast):
    MembershipFactory(tenant=cast.acme, status="invited", joined_at=None)
    MembershipFactory.create_batch(2, tenant=cast.acme, status="disabled")
    MembershipFactory.create_batch(3, tenant=cast.globex)
    counts = selectors.member_counts(tenant=cast.acme)
    assert (counts.active, counts.invited, counts.disabled, counts.total) == (4, 1, 2, 7)


def test_membership_get_is_scoped_to_the_tenant(cast):
    globex_id = Membership.objects.get(tenant=cast.globex).pk
    assert selectors.membership_get(tenant=cast.acme, membership_id=globex_id) is None
    assert selectors.membership_get(tenant=cast.globex, membership_id=globex_id) is not None
    assert selectors.membership_get(tenant=cast.acme, membership_id=2**70) is None
    assert selectors.membership_get(tenant=cast.acme, membership_id=-1) is None


def test_member_list_filters_and_order(cast):
    emails = list(selectors.member_list(tenant=cast.acme).values_list("user__email", flat=True))
    assert emails == sorted(emails)
    assert len(emails) == 4
    assert [m.role for m in selectors.member_list(tenant=cast.acme, role="viewer")] == ["viewer"]
    assert list(selectors.member_list(tenant=cast.acme, status="invited")) == []


def test_tenant_list_with_counts_in_one_query(cast, django_assert_num_queries):
    TenantFactory.create_batch(3)
    with django_assert_num_queries(1):
        rows = {t.slug: (t.member_count, t.invited_count) for t in selectors.tenant_list_with_counts()}
    assert rows["acme"] == (4, 0)
    assert rows["globex"] == (1, 0)


@pytest.mark.parametrize("slug", ["", "UPPER", "a..b", "-a", "a" * 41, "acme/../x"])
def test_tenant_get_malformed_slug_is_none(cast, slug):
    assert selectors.tenant_get(slug=slug) is None


def test_recent_audit_events_are_the_tenants_own(cast):
    from apps.tenants import services

    services.membership_invite(tenant=cast.globex, email="g@example.com", actor=cast.globex_owner)
    services.membership_invite(tenant=cast.acme, email="a@example.com", actor=cast.owner)
    events = selectors.recent_audit_events(tenant=cast.acme, limit=5)
    assert [e.action for e in events] == ["member.invite"]
    assert all(e.tenant_id == cast.acme.pk for e in events)
