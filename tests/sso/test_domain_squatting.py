"""Domain squatting from the attacker's side: a pending claim on someone else's domain blocks nobody.

Globex's admin (the squatter) claims acme.example before Acme does. Acme can
still claim it and prove it by DNS; the first proof wins and the squatter's
claim ends (audited, its claimants e-mailed). A pending claim never routes or
provisions anyone, and two tenants proving one domain at once cannot both win.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from django.core import mail
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.sso import dns, services
from apps.sso.models import ExternalIdentity, VerifiedDomain
from apps.sso.services import SSOInputError
from tests.sso.dns_server import LocalDNS
from tests.sso.test_flow_support import events, https_client, saml_connection, saml_sign_in, verify_domain

DOMAIN = "acme.example"


def _check(claim: VerifiedDomain, actor: Any = None) -> services.DomainCheck:
    return services.domain_check(domain=claim, actor=actor, min_interval=timedelta(0))


@pytest.mark.django_db
def test_squatters_pending_claim_blocks_neither_the_claim_nor_the_proof(
    cast, local_dns: LocalDNS, django_capture_on_commit_callbacks
) -> None:
    squat = services.domain_claim(tenant=cast.globex, domain=DOMAIN, actor=cast.globex_owner)

    owner = services.domain_claim(tenant=cast.acme, domain=DOMAIN, actor=cast.admin)
    local_dns.txt(DOMAIN, f"bastion-verify={owner.dns_token}")
    with django_capture_on_commit_callbacks(execute=True):
        result = _check(owner, actor=cast.admin)

    assert result.verified
    (left,) = VerifiedDomain.objects.filter(domain=DOMAIN)
    assert (left.tenant_id, left.verified_at is not None) == (cast.acme.pk, True)
    assert not VerifiedDomain.objects.filter(pk=squat.pk).exists()
    (ended,) = events("sso.domain_claim_end", tenant=cast.globex)
    assert (ended.metadata["domain"], ended.metadata["reason"]) == (DOMAIN, "verified_elsewhere")
    assert not events("sso.domain_claim_end", tenant=cast.acme)
    told = [m for m in mail.outbox if cast.globex_owner.email in m.to]
    assert len(told) == 1
    assert "another organisation proved it first" in told[0].subject
    assert "Acme" not in told[0].body  # the squatter is not told who owns the domain


@pytest.mark.django_db
def test_squatters_token_appearing_later_verifies_nothing(cast, local_dns: LocalDNS) -> None:
    squat = services.domain_claim(tenant=cast.globex, domain=DOMAIN, actor=cast.globex_owner)
    owner = services.domain_claim(tenant=cast.acme, domain=DOMAIN, actor=cast.admin)
    local_dns.txt(DOMAIN, f"bastion-verify={owner.dns_token}")
    assert _check(owner).verified
    # The squatter gets its token onto the name too (e.g. a stale or hijacked record).
    local_dns.txt(DOMAIN, f"bastion-verify={squat.dns_token}")

    assert _check(squat).status == "gone"
    with pytest.raises(SSOInputError):
        services.domain_verify(domain=squat, actor=cast.staff, reason="ticket 1")
    with pytest.raises(SSOInputError):  # nor claimed again
        services.domain_claim(tenant=cast.globex, domain=DOMAIN, actor=cast.globex_owner)
    assert VerifiedDomain.objects.get(domain=DOMAIN).tenant == cast.acme


@pytest.mark.django_db
def test_claim_that_slipped_in_beside_a_verified_one_ends_instead_of_winning(cast, local_dns: LocalDNS) -> None:
    verify_domain(cast.acme, DOMAIN)
    # A pending claim inserted while Acme's verification committed (the claim-time check raced).
    squat = VerifiedDomain.objects.create(tenant=cast.globex, domain=DOMAIN, dns_token="s" * 32)
    local_dns.txt(DOMAIN, f"bastion-verify={squat.dns_token}")

    result = _check(squat)

    assert (result.status, result.verified) == ("taken", False)
    assert "proved acme.example first" in result.message
    assert list(VerifiedDomain.objects.filter(domain=DOMAIN).values_list("tenant", flat=True)) == [cast.acme.pk]
    assert len(events("sso.domain_claim_end", tenant=cast.globex)) == 1


@pytest.mark.django_db
def test_staff_override_is_first_proof_too(cast) -> None:
    squat = services.domain_claim(tenant=cast.globex, domain=DOMAIN, actor=cast.globex_owner)
    owner = services.domain_claim(tenant=cast.acme, domain=DOMAIN, actor=cast.admin)

    services.domain_verify(domain=owner, actor=cast.staff, reason="ticket 42: registrar will not publish TXT")

    assert not VerifiedDomain.objects.filter(pk=squat.pk).exists()
    with pytest.raises(SSOInputError):  # staff cannot verify the squatter's (ended) claim afterwards
        services.domain_verify(domain=squat, actor=cast.staff, reason="oops")
    assert VerifiedDomain.objects.get(domain=DOMAIN).verified_method == "staff"


@pytest.mark.django_db
def test_pending_claim_never_routes_or_provisions(cast) -> None:
    squatter_connection = saml_connection(cast.globex)
    services.domain_claim(tenant=cast.globex, domain=DOMAIN, actor=cast.globex_owner)

    assert services.connection_for_email(f"ceo@{DOMAIN}") is None
    # The squatter's IdP asserts an acme.example address: no account is linked or created.
    client = https_client()
    saml_sign_in(client, squatter_connection, name_id=f"ceo@{DOMAIN}", attributes={"email": [f"ceo@{DOMAIN}"]})
    assert client.session.get("_auth_user_id") is None
    assert not ExternalIdentity.objects.filter(connection=squatter_connection).exists()

    # Acme proves the domain (staff override here): discovery now goes to Acme, never to Globex.
    acme_connection = saml_connection(cast.acme)
    owner = services.domain_claim(tenant=cast.acme, domain=DOMAIN, actor=cast.admin)
    services.domain_verify(domain=owner, actor=cast.staff, reason="ticket 7")
    assert services.connection_for_email(f"ceo@{DOMAIN}") == acme_connection


@pytest.mark.django_db
def test_one_claim_per_tenant_and_one_verified_owner_in_the_database(cast) -> None:
    services.domain_claim(tenant=cast.acme, domain=DOMAIN, actor=cast.admin)
    with pytest.raises(SSOInputError, match="already on your list"):
        services.domain_claim(tenant=cast.acme, domain="ACME.example.", actor=cast.admin)
    with pytest.raises(IntegrityError), transaction.atomic():
        VerifiedDomain.objects.create(tenant=cast.acme, domain=DOMAIN, dns_token="x" * 32)
    services.domain_claim(tenant=None, domain=DOMAIN, actor=cast.staff)  # the platform is a claimant too
    with pytest.raises(IntegrityError), transaction.atomic():
        VerifiedDomain.objects.create(tenant=None, domain=DOMAIN, dns_token="y" * 32)
    now = timezone.now()
    VerifiedDomain.objects.create(tenant=cast.globex, domain=DOMAIN, dns_token="z" * 32, verified_at=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        VerifiedDomain.objects.filter(tenant=cast.acme, domain=DOMAIN).update(verified_at=now)


@pytest.mark.django_db(transaction=True)
def test_two_tenants_proving_at_once_cannot_both_win(cast, local_dns: LocalDNS, monkeypatch) -> None:
    acme = services.domain_claim(tenant=cast.acme, domain=DOMAIN, actor=cast.admin)
    globex = services.domain_claim(tenant=cast.globex, domain=DOMAIN, actor=cast.globex_owner)
    local_dns.txt(DOMAIN, f"bastion-verify={acme.dns_token}", f"bastion-verify={globex.dns_token}")
    # Both lookups finish before either verification takes its locks: the worst interleaving.
    barrier = threading.Barrier(2, timeout=10)
    real_lookup = dns.txt_lookup

    def lookup_then_wait(*args: Any, **kwargs: Any) -> dns.TxtLookup:
        found = real_lookup(*args, **kwargs)
        barrier.wait()
        return found

    monkeypatch.setattr(dns, "txt_lookup", lookup_then_wait)
    results: dict[str, Any] = {}

    def prove(name: str, claim: VerifiedDomain) -> None:
        try:
            results[name] = _check(claim).status
        except Exception as exc:  # noqa: BLE001 - an IntegrityError here is the failure this test looks for
            results[name] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=prove, args=item) for item in (("acme", acme), ("globex", globex))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results.values()) == ["taken", "verified"], results
    (winner,) = VerifiedDomain.objects.filter(domain=DOMAIN)
    assert winner.verified_at is not None
    loser = cast.globex if winner.tenant_id == cast.acme.pk else cast.acme
    assert len(events("sso.domain_claim_end", tenant=loser)) == 1
