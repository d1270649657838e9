"""A suspended tenant's SSO sign-in writes nothing into the tenant (issue #7, item 16).

The attacker's angle: while platform staff have suspended Acme, someone keeps
using Acme's IdP to accept a pending invitation or to push new IdP groups (and
so new roles bound to them). Sign-in may still open the console for reading;
the writes must be refused like every other write of a suspended tenant.
"""

from __future__ import annotations

import pytest

from apps.sso.models import ExternalIdentity
from apps.tenants.models import Membership
from tests.factories import MembershipFactory, UserFactory
from tests.sso.test_flow_support import (
    attributes,
    events,
    https_client,
    saml_connection,
    saml_sign_in,
    signed_in_user_id,
    verify_domain,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def suspended_acme(cast):
    verify_domain(cast.acme, "acme.example")
    connection = saml_connection(cast.acme)
    cast.acme.status = "suspended"
    cast.acme.save()
    return connection


def test_invitation_is_not_activated_by_sso_while_suspended(cast, suspended_acme) -> None:
    ada = UserFactory(email="ada@acme.example", password=None)
    invited = MembershipFactory(tenant=cast.acme, user=ada, role="member", status=Membership.Status.INVITED)
    client = https_client()

    response = saml_sign_in(client, suspended_acme)

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    invited.refresh_from_db()
    assert invited.status == Membership.Status.INVITED
    assert events("member.join", tenant=cast.acme) == []
    assert events("auth.sign_in", tenant=cast.acme)[-1].metadata["code"] == "tenant_suspended"


def test_group_bindings_are_not_rewritten_while_suspended(cast, suspended_acme) -> None:
    ada = UserFactory(email="ada@acme.example", password=None)
    membership = MembershipFactory(tenant=cast.acme, user=ada, role="member", idp_groups=["readers"])
    client = https_client()

    response = saml_sign_in(
        client, suspended_acme, attributes=attributes("ada@acme.example", groups=("admins", "billing-admins"))
    )

    assert response.status_code == 302  # signing in to read is still allowed
    assert signed_in_user_id(client) == str(ada.pk)
    membership.refresh_from_db()
    assert membership.idp_groups == ["readers"]
    assert ExternalIdentity.objects.get(user=ada).last_groups == []
    assert events("member.idp_groups_sync", tenant=cast.acme) == []
