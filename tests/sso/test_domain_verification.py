"""Automatic domain verification from the attacker's side, against a real DNS server on loopback.

Only this claim's exact ``bastion-verify=<token>`` on exactly the claimed name
verifies it; DNS trouble never does; a released domain's links stop signing in.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from apps.sso import services
from apps.sso.models import ExternalIdentity, VerifiedDomain
from apps.sso.services import SSOInputError
from apps.sso.tasks import check_pending_domains
from tests.sso.dns_server import LocalDNS
from tests.sso.test_flow_support import events, https_client, saml_connection, saml_sign_in, verify_domain

pytestmark = pytest.mark.django_db

BASE = "/t/acme/settings/sso/"


def _claim(cast, domain: str = "acme.example", tenant=None) -> VerifiedDomain:
    return services.domain_claim(tenant=tenant or cast.acme, domain=domain, actor=cast.admin)


def _check(claim: VerifiedDomain, actor=None) -> services.DomainCheck:
    return services.domain_check(domain=claim, actor=actor, min_interval=timedelta(0))


def test_published_record_verifies_audits_and_tells_the_claimants(
    cast, local_dns: LocalDNS, django_capture_on_commit_callbacks
) -> None:
    claim = _claim(cast)
    local_dns.txt("acme.example", "v=spf1 -all", f"bastion-verify={claim.dns_token}")

    with django_capture_on_commit_callbacks(execute=True):
        result = _check(claim, actor=cast.admin)

    assert result.verified
    claim.refresh_from_db()
    assert claim.verified_at is not None
    assert (claim.verified_method, claim.verified_by, claim.last_check_status) == ("dns", None, "verified")
    (event,) = events("sso.domain_verify", tenant=cast.acme)
    assert event.metadata["method"] == "dns"
    assert claim.dns_token not in str(event.metadata)
    recipients = sorted(address for message in mail.outbox for address in message.to)
    assert cast.admin.email in recipients
    assert cast.owner.email in recipients
    assert all("acme.example is verified" in message.subject for message in mail.outbox)


def test_another_tenants_token_does_not_verify(cast, local_dns: LocalDNS) -> None:
    mine = _claim(cast, "acme.example")
    theirs = services.domain_claim(tenant=cast.globex, domain="globex.example", actor=None)
    # Globex publishes its own (valid) token on acme.example, and Acme's on globex.example.
    local_dns.txt("acme.example", f"bastion-verify={theirs.dns_token}")
    local_dns.txt("globex.example", f"bastion-verify={mine.dns_token}")

    assert _check(mine).status == "mismatch"
    assert _check(theirs).status == "mismatch"
    assert not VerifiedDomain.objects.filter(verified_at__isnull=False).exists()


@pytest.mark.parametrize(
    "value",
    [
        "prefix bastion-verify={token}",
        "bastion-verify={token} suffix",
        "xbastion-verify={token}",
        "bastion-verify={token}0",
        "{token}",
        "bastion-verify=",
    ],
)
def test_token_inside_a_longer_value_does_not_verify(cast, local_dns: LocalDNS, value: str) -> None:
    claim = _claim(cast)
    local_dns.txt("acme.example", value.format(token=claim.dns_token))

    assert not _check(claim).verified
    claim.refresh_from_db()
    assert claim.verified_at is None


def test_record_on_a_sub_domain_or_the_parent_does_not_verify(cast, local_dns: LocalDNS) -> None:
    claim = _claim(cast, "acme.example")
    sub_claim = _claim(cast, "eu.acme.example")
    local_dns.exists("acme.example")
    local_dns.txt("www.acme.example", f"bastion-verify={claim.dns_token}")  # a sub-domain an attacker may host
    local_dns.txt("example", f"bastion-verify={claim.dns_token}")
    local_dns.txt("acme.example.evil.test", f"bastion-verify={claim.dns_token}")
    local_dns.txt("acme.example", f"bastion-verify={'0' * 32}")  # parent has a record, not the sub-domain's

    assert _check(claim).status == "mismatch"
    assert _check(sub_claim).status == "nxdomain"  # the parent's record does not verify eu.acme.example
    assert not VerifiedDomain.objects.filter(verified_at__isnull=False).exists()


def test_domain_verified_by_another_tenant_cannot_be_claimed_or_verified(cast, local_dns: LocalDNS) -> None:
    verify_domain(cast.acme, "acme.example")
    local_dns.txt("acme.example", "bastion-verify=" + "t" * 32)

    with pytest.raises(SSOInputError):
        services.domain_claim(tenant=cast.globex, domain="acme.example", actor=None)
    with pytest.raises(SSOInputError):
        services.domain_claim(tenant=cast.globex, domain="ACME.example.", actor=None)
    assert VerifiedDomain.objects.get(domain="acme.example").tenant == cast.acme


@pytest.mark.parametrize("trouble", ["servfail", "silent", "nxdomain", "no_records"])
def test_dns_trouble_never_verifies(cast, local_dns: LocalDNS, trouble: str) -> None:
    claim = _claim(cast)
    if trouble == "servfail":
        local_dns.servfail("acme.example")
    elif trouble == "silent":
        local_dns.silent("acme.example")
    elif trouble == "no_records":
        local_dns.exists("acme.example")

    result = _check(claim)

    expected = {"servfail": "failed", "silent": "timeout", "nxdomain": "nxdomain", "no_records": "no_records"}
    assert result.status == expected[trouble]
    claim.refresh_from_db()
    assert (claim.verified_at, claim.last_check_status) == (None, expected[trouble])
    assert not events("sso.domain_verify")


def test_check_now_is_rate_limited_per_claim(cast, local_dns: LocalDNS) -> None:
    claim = _claim(cast)
    other = _claim(cast, "acme-labs.example")

    assert services.domain_check(domain=claim, actor=cast.admin).checked
    again = services.domain_check(domain=claim, actor=cast.admin)

    assert (again.checked, again.status) == (False, "too_soon")
    assert local_dns.queries == ["acme.example."]
    assert services.domain_check(domain=other, actor=cast.admin).checked  # the limit is per claim


def test_check_now_view_scoped_to_the_tenant(cast, local_dns: LocalDNS) -> None:
    claim = _claim(cast)
    theirs = services.domain_claim(tenant=cast.globex, domain="globex.example", actor=None)
    local_dns.txt("acme.example", f"bastion-verify={claim.dns_token}")
    local_dns.txt("globex.example", f"bastion-verify={theirs.dns_token}")
    admin = https_client(cast.admin)

    assert admin.post(f"{BASE}domains/{theirs.pk}/check/").status_code == 404
    assert https_client(cast.member).post(f"{BASE}domains/{claim.pk}/check/").status_code == 403
    assert https_client().post(f"{BASE}domains/{claim.pk}/check/").status_code == 302  # to sign-in
    assert local_dns.queries == []

    response = admin.post(f"{BASE}domains/{claim.pk}/check/", follow=True)

    assert "acme.example is verified" in response.content.decode()
    assert VerifiedDomain.objects.get(pk=claim.pk).verified_method == "dns"
    assert VerifiedDomain.objects.get(pk=theirs.pk).verified_at is None


def test_schedule_checks_pending_claims_and_expires_old_ones(
    cast, local_dns: LocalDNS, django_capture_on_commit_callbacks
) -> None:
    fresh = _claim(cast)
    stale = _claim(cast, "old-acme.example")
    VerifiedDomain.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(days=15))
    local_dns.txt("acme.example", f"bastion-verify={fresh.dns_token}")
    local_dns.txt("old-acme.example", f"bastion-verify={stale.dns_token}")  # too late: it expired

    with django_capture_on_commit_callbacks(execute=True):
        assert check_pending_domains() == 1

    assert VerifiedDomain.objects.get(pk=fresh.pk).verified_method == "dns"
    assert not VerifiedDomain.objects.filter(pk=stale.pk).exists()
    (expired,) = events("sso.domain_expire", tenant=cast.acme)
    assert expired.metadata["domain"] == "old-acme.example"
    assert any("old-acme.example expired" in message.subject for message in mail.outbox)
    # Idempotent: nothing left to expire or verify, no second notice.
    sent = len(mail.outbox)
    with django_capture_on_commit_callbacks(execute=True):
        assert check_pending_domains() == 0
    assert len(mail.outbox) == sent
    assert len(events("sso.domain_verify", tenant=cast.acme)) == 1


def test_released_domain_ends_its_links_and_they_no_longer_sign_in(cast) -> None:
    claim = verify_domain(cast.acme, "acme.example")
    verify_domain(cast.acme, "acme-labs.example")
    connection = saml_connection(cast.acme)
    assert saml_sign_in(https_client(), connection).status_code == 302
    labs = {"name_id": "bob@acme-labs.example", "attributes": {"email": ["bob@acme-labs.example"]}}
    assert saml_sign_in(https_client(), connection, **labs).status_code == 302
    assert ExternalIdentity.objects.filter(connection=connection).count() == 2

    services.domain_release(domain=claim, actor=cast.admin, tenant=cast.acme)

    assert list(ExternalIdentity.objects.values_list("subject", flat=True)) == ["bob@acme-labs.example"]
    (released,) = events("sso.domain_release", tenant=cast.acme)
    assert released.metadata["identity_links_ended"] == 1
    client = https_client()
    saml_sign_in(client, connection)
    assert client.session.get("_auth_user_id") is None
    assert events("auth.sign_in", tenant=cast.acme)[-1].metadata["code"] == "domain"
