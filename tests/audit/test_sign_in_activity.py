"""Tenant admins see their own members' sign-in activity, and nothing of other tenants (issue #7, item 19).

Attacker's side: globex's admin must not learn what acme's members do, nor
which other tenants (or IdPs) a shared member uses; a failed attempt for an
e-mail without an account must reach no tenant's log.
"""

from __future__ import annotations

import json

import pytest
from django.core.cache import cache

from apps.accounts import services as account_services
from apps.audit.models import AuditEvent
from tests.conftest import PASSWORD
from tests.factories import MembershipFactory

ACME_LOG = "/t/acme/audit/"
GLOBEX_LOG = "/t/globex/audit/"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    cache.clear()
    yield
    cache.clear()


def _sign_in(client, email: str, password: str = PASSWORD):
    return client.post("/accounts/login/", {"login": email, "password": password})


def _tenant_events(tenant, action_prefix: str = "auth."):
    return list(AuditEvent.objects.for_tenant(tenant).filter(action__startswith=action_prefix).order_by("id"))


def _text(events) -> str:
    return json.dumps(
        [[e.action, e.actor_display, e.target_id, e.result, e.metadata] for e in events], ensure_ascii=False
    )


def test_acme_admin_sees_a_member_sign_in_and_sign_out_on_the_audit_page(cast, client, client_for):
    assert _sign_in(client, cast.member.email).status_code == 302
    client.post("/accounts/logout/")
    body = client_for(cast.admin).get(ACME_LOG).content.decode()
    assert "auth.sign_in" in body
    assert "auth.sign_out" in body
    assert cast.member.email in body
    # The platform record is still there too.
    assert AuditEvent.objects.filter(tenant__isnull=True, action="auth.sign_in", actor_id=str(cast.member.pk)).exists()


def test_globex_admin_does_not_see_acme_only_activity(cast, client, client_for):
    assert _sign_in(client, cast.member.email).status_code == 302
    _sign_in(client_for(cast.member), cast.member.email, "wrong password")
    body = client_for(cast.globex_owner).get(GLOBEX_LOG).content.decode()
    assert cast.member.email not in body
    assert _tenant_events(cast.globex) == []


def test_failures_and_lockouts_of_a_member_reach_their_tenant_only(cast, client):
    for _ in range(6):  # the test rate limit locks the account after 5 failures
        _sign_in(client, cast.member.email, "wrong password")
    events = _tenant_events(cast.acme)
    results = {event.result for event in events}
    assert {"failure", "denied"} <= results
    assert any(event.metadata.get("reason") == "rate_limited" for event in events)
    assert _tenant_events(cast.globex) == []


def test_a_failure_for_an_unknown_email_reaches_no_tenant(cast, client):
    _sign_in(client, "nobody@acme.example", "whatever")
    _sign_in(client, "ghost@globex.example", "whatever")
    assert AuditEvent.objects.filter(action="auth.sign_in", tenant__isnull=False).count() == 0
    assert AuditEvent.objects.filter(action="auth.sign_in", tenant__isnull=True, result="failure").count() == 2


def test_mfa_changes_and_ended_sessions_are_shown_to_each_tenant_of_the_person(cast):
    MembershipFactory(tenant=cast.globex, user=cast.member, role="member")
    account_services.record_mfa_change(user=cast.member, added=True, kind="totp")
    account_services.record_mfa_change(user=cast.member, added=False, kind="totp")
    account_services.sign_out_everywhere(cast.member, reason="membership_disabled", by=cast.admin)
    for tenant in (cast.acme, cast.globex):
        actions = [event.action for event in _tenant_events(tenant)]
        assert actions == ["auth.mfa_add", "auth.mfa_remove", "auth.sign_out_everywhere"]
    # globex's copy does not say that acme's admin ended the sessions, nor why.
    (ended,) = _tenant_events(cast.globex, "auth.sign_out_everywhere")
    assert ended.actor_type == "system"
    assert cast.admin.email not in _text(_tenant_events(cast.globex))
    assert "membership_disabled" not in _text(_tenant_events(cast.globex))


def test_an_sso_sign_in_stays_in_the_connections_tenant(cast):
    """A member of both tenants signs in through acme's IdP: globex learns nothing of it (nor the IdP's name)."""
    MembershipFactory(tenant=cast.globex, user=cast.member, role="member")
    account_services.record_sign_in(user=cast.member, method="saml", idp="Acme Okta", mfa=True, tenant=cast.acme)
    account_services.record_sign_in(user=cast.member, method="password")
    acme, globex = _tenant_events(cast.acme), _tenant_events(cast.globex)
    assert [event.metadata["method"] for event in acme] == ["saml", "password"]
    assert [event.metadata["method"] for event in globex] == ["password"]
    assert "Okta" not in _text(globex)
    assert "saml" not in _text(globex)


def test_a_policy_refusal_for_one_tenant_is_not_copied_to_the_others(cast):
    MembershipFactory(tenant=cast.globex, user=cast.member, role="member")
    account_services.record_sign_in(
        user=cast.member,
        method="password",
        result="denied",
        reason="sso_required",
        tenant=cast.acme,
        extra={"tenant": "acme", "rule": "tenant_sso"},
    )
    assert len(_tenant_events(cast.acme)) == 1
    assert _tenant_events(cast.globex) == []
