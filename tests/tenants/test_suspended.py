"""A suspended tenant: reads work with a banner, every write is refused with 403 and changes nothing."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.tenants import services
from apps.tenants.models import Membership, Tenant
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def suspended(cast):
    services.tenant_set_status(tenant=cast.acme, suspended=True, reason="Invoice overdue", actor=cast.staff)
    return cast


@pytest.mark.parametrize("path", ["/t/acme/", "/t/acme/members/"])
def test_reads_work_with_banner(suspended, client_for, path):
    response = client_for(suspended.owner).get(path)
    assert response.status_code == 200
    assert "This tenant is suspended" in response.content.decode()


def test_no_write_controls_while_suspended(suspended, client_for):
    page = client_for(suspended.owner).get("/t/acme/members/").content.decode()
    assert "Send invitation" not in page
    assert "/role/" not in page


def test_every_write_is_refused(suspended, client_for):
    cast = suspended
    invited = MembershipFactory(tenant=cast.acme, status="invited", joined_at=None)
    member = Membership.objects.get(tenant=cast.acme, user=cast.member)
    before_events = AuditEvent.objects.for_tenant(cast.acme).count()
    client = client_for(cast.owner)
    posts = [
        ("/t/acme/members/invite/", {"email": "new@example.com", "role": "member"}),
        (f"/t/acme/members/{member.pk}/role/", {"role": "viewer"}),
        (f"/t/acme/members/{member.pk}/disable/", {}),
        (f"/t/acme/members/{member.pk}/remove/", {}),
        (f"/t/acme/members/{invited.pk}/resend/", {}),
    ]
    for path, data in posts:
        response = client.post(path, data)
        assert response.status_code == 403, path
        assert "is suspended" in response.content.decode()
    member.refresh_from_db()
    assert (member.role, member.status) == ("member", "active")
    assert not Membership.objects.filter(user__email="new@example.com").exists()
    assert AuditEvent.objects.for_tenant(cast.acme).count() == before_events


def test_reactivated_tenant_accepts_writes_again(suspended, client_for):
    services.tenant_set_status(tenant=suspended.acme, suspended=False, actor=suspended.staff)
    member = Membership.objects.get(tenant=suspended.acme, user=suspended.member)
    response = client_for(suspended.admin).post(f"/t/acme/members/{member.pk}/role/", {"role": "viewer"})
    assert response.status_code == 302


def test_suspension_and_reactivation_publish_a_new_access_version(cast, django_capture_on_commit_callbacks):
    """Whoever suspends (staff here), warm runtime-API processes see it: the access version moves and is published."""
    from django.core.cache import cache

    from apps.access.permsets import version_cache_key

    before = Tenant.objects.get(pk=cast.acme.pk).access_version
    with django_capture_on_commit_callbacks(execute=True):  # published after the commit
        suspended = services.tenant_set_status(tenant=cast.acme, suspended=True, reason="audit", actor=cast.staff)
    assert suspended.access_version <= before + 1  # the row was saved before the bump
    assert Tenant.objects.get(pk=cast.acme.pk).access_version == before + 1
    assert int(cache.get(version_cache_key(cast.acme.pk))) == before + 1
    services.tenant_set_status(tenant=cast.acme, suspended=False, actor=cast.staff)
    assert Tenant.objects.get(pk=cast.acme.pk).access_version == before + 2
