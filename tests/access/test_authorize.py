"""The decision point: deny by default, reasons, membership and status checks."""

from __future__ import annotations

import pytest

from apps.access.decisions import authorize
from apps.access.permissions import BASE_ROLE_PERMISSIONS, PERMISSIONS
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db


def _membership(cast, user):
    return Membership.objects.for_tenant(cast.acme).get(user=user)


def test_owner_may_do_everything_in_the_catalog(cast) -> None:
    owner = _membership(cast, cast.owner)
    assert all(authorize(owner, action, tenant=cast.acme) for action in PERMISSIONS)


def test_viewer_is_denied_with_a_reason(cast) -> None:
    decision = authorize(_membership(cast, cast.viewer), "audit.read", tenant=cast.acme)
    assert not decision.allowed
    assert decision.reasons == ("no role grants audit.read",)


def test_membership_of_another_tenant_is_denied(cast) -> None:
    globex_owner = Membership.objects.for_tenant(cast.globex).get(user=cast.globex_owner)
    decision = authorize(globex_owner, "tenant.view", tenant=cast.acme)
    assert not decision.allowed
    assert decision.reasons == ("not a member of this tenant",)


def test_disabled_membership_is_denied(cast) -> None:
    member = _membership(cast, cast.admin)
    member.status = Membership.Status.DISABLED
    assert not authorize(member, "tenant.view", tenant=cast.acme)


def test_no_membership_is_denied(cast) -> None:
    assert not authorize(None, "tenant.view", tenant=cast.acme)


def test_unknown_action_is_a_programming_error(cast) -> None:
    with pytest.raises(ValueError, match="unknown permission"):
        authorize(_membership(cast, cast.owner), "prompt.delete_everything", tenant=cast.acme)


def test_every_role_grants_only_catalog_permissions() -> None:
    for granted in BASE_ROLE_PERMISSIONS.values():
        assert granted <= set(PERMISSIONS)


@pytest.mark.parametrize("slug", ["UPPER", "a..b", "x" * 200, "-lead", "acme%00", "acme'--"])
def test_malformed_slugs_are_404(cast, client_for, slug) -> None:
    assert client_for(cast.owner).get(f"/t/{slug}/").status_code == 404


def test_unknown_slug_and_non_member_look_the_same(cast, client_for) -> None:
    client = client_for(cast.outsider)
    unknown = client.get("/t/no-such-tenant/")
    foreign = client.get("/t/acme/")
    assert unknown.status_code == foreign.status_code == 404
    assert b"Acme Corp" not in foreign.content


def test_anonymous_is_sent_to_sign_in(client, cast) -> None:
    response = client.get("/t/acme/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_membership_roles_are_exactly_the_builtin_roles() -> None:
    from apps.access.permissions import BUILTIN_ROLES

    assert set(Membership.Role.values) == set(BUILTIN_ROLES)


def test_the_database_accepts_every_builtin_role(cast) -> None:
    membership = Membership.objects.for_tenant(cast.acme).get(user=cast.viewer)
    for role in Membership.Role.values:
        Membership.objects.filter(pk=membership.pk).update(role=role)


def test_suspended_tenant_may_only_read(cast) -> None:
    from apps.tenants.services import tenant_set_status

    tenant_set_status(tenant=cast.acme, suspended=True, reason="unpaid invoices")
    owner = Membership.objects.select_related("tenant").get(tenant=cast.acme, user=cast.owner)
    assert authorize(owner, "audit.read")
    denied = authorize(owner, "tool.execute")
    assert not denied.allowed
    assert denied.reasons == ("tenant is suspended (read-only)",)
