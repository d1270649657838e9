"""Test sign-ins answer only about the connection's own tenant (issue #7, item 14).

The attacker is an admin of Acme with ``sso.manage``: they run test sign-ins
through their own IdP asserting other people's addresses, hoping the report
tells them which addresses have a Bastion account and which are platform staff.
"""

from __future__ import annotations

import pytest

from apps.sso import services
from apps.sso.models import SSOConnection
from apps.sso.types import Assertion
from tests.factories import UserFactory
from tests.sso.test_flow_support import saml_connection, verify_domain

pytestmark = pytest.mark.django_db


@pytest.fixture
def draft(cast) -> SSOConnection:
    verify_domain(cast.acme, "acme.example")
    return saml_connection(cast.acme, status=SSOConnection.Status.DRAFT)


def _account_line(connection, actor, email: str) -> tuple[bool | None, str]:
    assertion = Assertion(subject=email, email=email, groups=())
    report = services.connection_test_complete(connection=connection, assertion=assertion, actor=actor)
    (check,) = [c for c in report.checks if c.label == "Account"]
    return check.ok, check.detail.replace(email, "<email>")


def test_existing_account_elsewhere_looks_like_no_account(cast, draft) -> None:
    UserFactory(email="someone@acme.example")  # has an account, not a member of Acme
    existing = _account_line(draft, cast.admin, "someone@acme.example")
    unknown = _account_line(draft, cast.admin, "nobody@acme.example")

    assert existing == unknown
    assert "someone@acme.example" not in existing[1]


def test_platform_staff_address_is_not_revealed(cast, draft) -> None:
    staff = _account_line(draft, cast.admin, cast.staff.email)
    unknown = _account_line(draft, cast.admin, "nobody@bastion.example")

    assert staff == unknown
    assert "staff" not in staff[1].lower()


def test_other_tenants_member_is_not_revealed(cast, draft) -> None:
    other = _account_line(draft, cast.admin, cast.globex_owner.email)
    unknown = _account_line(draft, cast.admin, "nobody@globex.example")

    assert other == unknown


def test_own_members_are_still_reported(cast, draft) -> None:
    ok, detail = _account_line(draft, cast.admin, cast.member.email)

    assert ok is None
    assert "<email>" in detail
    assert "member" in detail
