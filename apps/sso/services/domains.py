"""Verified e-mail domains: normalisation, claims, automatic DNS verification, release, and discovery by e-mail.

A tenant (or the platform) claims a domain and publishes the claim's TXT record
``bastion-verify=<token>`` on it; Bastion looks the record up itself
(``domain_check``: when an admin clicks "Check now", and on a schedule for every
pending claim, ``domain_claims_sweep``). Several tenants may claim one domain;
the first to prove it wins and the others' claims end (so a squatter's pending
claim blocks nobody). Only a verified domain routes sign-ins:
``connection_for_email`` finds the connection of the tenant that owns the
address's verified domain. A claim still pending after ``CLAIM_PENDING_DAYS``
expires, so nobody can sit on a domain they cannot prove. Platform staff may
verify without DNS (``domain_verify``: an explicit override with a reason,
audited). Releasing a domain ends the identity links made under it. The
claiming admin and the tenant's owners and admins are e-mailed the result.
Shared mailbox providers can never be claimed.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import idna
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import record
from apps.sso import dns, emergency, selectors
from apps.sso.models import ExternalIdentity, SSOConnection, VerifiedDomain
from apps.sso.services._common import _CONTROL_RE, _LABEL_RE, DOMAIN_MAX, SSOInputError, _audit_actor
from apps.sso.services.domain_notices import DOMAIN_EXPIRED, DOMAIN_LOST, DOMAIN_VERIFIED, domain_notice_enqueue
from apps.tenants.models import Tenant

# Shared mailbox providers: nobody can own these for a tenant.
PUBLIC_MAIL_DOMAINS = frozenset(
    {
        "gmail.com",
        "googlemail.com",
        "outlook.com",
        "hotmail.com",
        "live.com",
        "msn.com",
        "yahoo.com",
        "ymail.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "aol.com",
        "proton.me",
        "protonmail.com",
        "gmx.com",
        "gmx.net",
        "gmx.de",
        "web.de",
        "mail.com",
        "yandex.ru",
        "yandex.com",
        "qq.com",
        "163.com",
        "zoho.com",
        "fastmail.com",
        "hey.com",
    }
)

# A pending claim expires after this long: nobody keeps a domain they cannot prove.
CLAIM_PENDING_DAYS = 14
# "Check now" and the scheduler look a claim up at most this often (the DNS server is someone else's).
CHECK_MIN_INTERVAL = timedelta(seconds=30)
METHOD_DNS = "dns"
METHOD_STAFF = "staff"
# What the last check found, in the words shown to the admin (``DomainCheck.status`` → message).
CHECK_MESSAGES = {
    "verified": "{domain} is verified: Bastion found its TXT record.",
    "mismatch": "{domain} has TXT records, but none is exactly the bastion-verify value shown here.",
    "no_records": "{domain} has no TXT record yet. DNS changes can take a while to appear.",
    "nxdomain": "{domain} does not exist in DNS.",
    "timeout": "The DNS lookup for {domain} timed out; Bastion tries again on its own.",
    "failed": "The DNS servers of {domain} answered with an error; Bastion tries again on its own.",
    "too_soon": "{domain} was checked a moment ago; try again in half a minute.",
    "expired": "The claim on {domain} expired; claim it again to get a new record.",
    "gone": "This claim no longer exists.",
    "taken": "Another organisation proved {domain} first; this claim has ended.",
}

# --- verified domains ---------------------------------------------------------------------------


def normalize_domain(value: str) -> str:
    """``value`` as a lowercase IDNA (punycode) domain with at least two labels; raises SSOInputError."""
    text = (value or "").strip().lower().rstrip(".")
    if text.startswith("@"):
        text = text[1:]
    if not text:
        raise SSOInputError("Enter a domain, e.g. acme.com.", field="domain")
    if any(ch in text for ch in "@/:?#* \t") or _CONTROL_RE.search(text):
        raise SSOInputError(
            "Enter just the domain, e.g. acme.com (no e-mail address, URL or wildcard).", field="domain"
        )
    try:
        text = idna.encode(text, uts46=True).decode("ascii")
    except (idna.IDNAError, UnicodeError):
        raise SSOInputError("This is not a valid domain name.", field="domain") from None
    labels = text.split(".")
    if len(text) > DOMAIN_MAX or len(labels) < 2 or not all(_LABEL_RE.match(label) for label in labels):
        raise SSOInputError("This is not a valid domain name.", field="domain")
    if labels[-1].isdigit():
        raise SSOInputError("Enter a domain name, not an IP address.", field="domain")
    return text


def email_domain(email: str) -> str:
    """The normalised domain of an e-mail address, or '' if the address is not usable."""
    address = (email or "").strip()
    if address.count("@") != 1:
        return ""
    try:
        validate_email(address)
        return normalize_domain(address.rsplit("@", 1)[1])
    except (ValidationError, SSOInputError):
        return ""


def domain_claim(*, tenant: Tenant | None, domain: str, actor: User | None) -> VerifiedDomain:
    """Claim ``domain`` for ``tenant`` (the platform for None) with a fresh DNS TXT token; proven later by DNS.

    Several tenants may hold a pending claim on the same domain, so a squatter's
    claim blocks nobody: the first to prove it (``domain_check``, or staff's
    ``domain_verify``) wins and the other claims end. A domain already verified
    for someone cannot be claimed; a tenant holds one claim per domain; shared
    mailbox providers (gmail.com…) cannot be claimed. Raises SSOInputError (the
    message does not reveal which tenant holds a verified domain).
    """
    name = normalize_domain(domain)
    if name in PUBLIC_MAIL_DOMAINS:
        raise SSOInputError(
            f"{name} is a public e-mail provider; it cannot belong to one organisation.", field="domain"
        )
    if emergency.is_login_domain(name):  # emergency accounts' logins: no IdP may ever sign them in
        raise SSOInputError(f"{name} is reserved by Bastion and cannot be claimed.", field="domain")
    taken = "This domain is already verified for another organisation. If it is yours, contact Bastion support."
    mine = f"{name} is already on your list."
    tenant_id = tenant.pk if tenant is not None else None
    with transaction.atomic():
        for existing in VerifiedDomain.objects.filter(domain=name):
            if existing.tenant_id == tenant_id:
                raise SSOInputError(mine, field="domain")
            if existing.verified_at is not None:
                raise SSOInputError(taken, field="domain")
        try:
            with transaction.atomic():  # savepoint: the same tenant claiming twice at once ends as a form error
                claim = VerifiedDomain.objects.create(
                    tenant=tenant, domain=name, dns_token=secrets.token_hex(16), claimed_by=actor
                )
        except IntegrityError:
            raise SSOInputError(mine, field="domain") from None
        record(
            "sso.domain_claim",
            tenant=tenant,
            actor=_audit_actor(actor),
            target=claim,
            metadata={"domain": name, "before": None, "after": {"verified": False}},
        )
    return claim


def _require_staff(actor: Any) -> None:
    if actor is None or not (getattr(actor, "is_active", False) and getattr(actor, "is_staff", False)):
        raise SSOInputError("Only platform staff can verify or release domains of other organisations.")


def _mark_verified(
    locked: VerifiedDomain, *, method: str, verifier: User | None, note: str, audit_actor: User | None
) -> None:
    """Verify a locked pending claim: save, audit on the tenant's and the platform's chain, tell the claimants."""
    locked.verified_at = timezone.now()
    locked.verified_by = verifier
    locked.verified_method = method
    locked.verified_note = note
    locked.last_check_status = "verified" if method == METHOD_DNS else locked.last_check_status
    locked.save(update_fields=["verified_at", "verified_by", "verified_method", "verified_note", "last_check_status"])
    meta: dict[str, Any] = {
        "domain": locked.domain,
        "method": method,
        "before": {"verified": False},
        "after": {"verified": True},
    }
    if note:
        meta["reason"] = note
    if locked.tenant_id is not None:
        record(
            "sso.domain_verify", tenant=locked.tenant_id, actor=_audit_actor(audit_actor), target=locked, metadata=meta
        )
    record(
        "sso.domain_verify",
        tenant=None,
        actor=_audit_actor(audit_actor),
        target=locked,
        metadata={**meta, "tenant": locked.tenant.slug if locked.tenant else None},
    )
    domain_notice_enqueue(
        tenant_id=locked.tenant_id, claimant_id=locked.claimed_by_id, domain=locked.domain, event=DOMAIN_VERIFIED
    )


def _end_claim(claim: VerifiedDomain, *, reason: str) -> None:
    """End a pending claim another claim of its domain has won: delete, audit, tell its claimants."""
    meta = {"domain": claim.domain, "before": {"verified": False}, "after": None, "reason": reason}
    record("sso.domain_claim_end", tenant=claim.tenant_id, actor=_audit_actor(None), target=claim, metadata=meta)
    domain_notice_enqueue(
        tenant_id=claim.tenant_id, claimant_id=claim.claimed_by_id, domain=claim.domain, event=DOMAIN_LOST
    )
    claim.delete()


def _verify_first_proof(
    claim_id: int, *, method: str, verifier: User | None, note: str, audit_actor: User | None
) -> tuple[str, VerifiedDomain | None]:
    """Verify claim ``claim_id`` if no other claim of its domain is verified; end the domain's other claims.

    Call inside a transaction. Every claim of the domain is locked, in id order
    (two verifications of one domain queue up instead of deadlocking), so two
    tenants proving the same domain at once cannot both win: the second one
    sees the first one's verified row once it gets the lock, and its own claim
    ends. The partial unique index ``verified_domain_one_owner`` is the last
    line behind this. Returns ``(status, claim)``: "verified" (now or already),
    "taken" (another claim won; this one has ended) or "gone".
    """
    target = VerifiedDomain.objects.filter(pk=claim_id).values_list("domain", flat=True).first()
    if target is None:
        return "gone", None
    claims = list(
        VerifiedDomain.objects.select_for_update(of=("self",))
        .select_related("tenant")
        .filter(domain=target)
        .order_by("pk")
    )
    locked = next((c for c in claims if c.pk == claim_id), None)
    if locked is None:  # ended while we waited for the lock: by a winner (taken), or released/expired (gone)
        return ("taken" if any(c.verified_at is not None for c in claims) else "gone"), None
    if locked.verified_at is not None:
        return "verified", locked
    if any(c.verified_at is not None for c in claims):
        _end_claim(locked, reason="verified_elsewhere")
        return "taken", None
    _mark_verified(locked, method=method, verifier=verifier, note=note, audit_actor=audit_actor)
    for other in claims:
        if other.pk != locked.pk:
            _end_claim(other, reason="verified_elsewhere")
    return "verified", locked


def domain_verify(*, domain: VerifiedDomain, actor: User, reason: str) -> VerifiedDomain:
    """Verify a claim without a DNS check: platform staff's explicit override, with the reason given.

    For an organisation that cannot publish a TXT record (a registrar that
    will not, an internal DNS Bastion cannot reach). From then on the tenant's
    SSO connections may provision people of that domain. Audited on the
    tenant's and the platform's chain with the reason; the claimants are
    e-mailed. Raises SSOInputError for a non-staff caller or an empty reason.
    """
    _require_staff(actor)
    note = " ".join((reason or "").split())[:300]
    if not note:
        raise SSOInputError("Say why the domain is verified without its DNS record (e.g. the support ticket).")
    with transaction.atomic():
        status, locked = _verify_first_proof(
            domain.pk, method=METHOD_STAFF, verifier=actor, note=note, audit_actor=actor
        )
    if status == "taken":
        raise SSOInputError(f"{domain.domain} is already verified for another organisation; this claim has ended.")
    if locked is None:
        raise SSOInputError("This claim no longer exists.")
    return locked


def _end_links_under(claim: VerifiedDomain) -> int:
    """Delete the identity links of the claim's tenant's connections whose user's e-mail is in the domain.

    Those links were made because the domain was verified for that tenant
    (``signin._identity_user``); without the domain they must not keep
    signing people in. Returns how many were ended.
    """
    links = ExternalIdentity.objects.filter(
        connection__in=SSOConnection.objects.for_tenant(claim.tenant_id),
        user__email__iendswith="@" + claim.domain,
    )
    count, _ = links.delete()
    return count


def domain_release(*, domain: VerifiedDomain, actor: User | None, tenant: Tenant | None = None) -> None:
    """Remove a domain claim: by the owning tenant's admin (pass ``tenant``) or by platform staff.

    Once released, the domain's people are no longer provisioned by the
    tenant's connections, discovery stops routing them, and the identity links
    of the tenant's connections for addresses in the domain are ended (their
    next SSO sign-in is refused unless the domain is verified again). Audited
    with the number of links ended. Raises SSOInputError when ``tenant`` does
    not own the claim, or a staff-only release is asked by someone else.
    """
    if tenant is None:
        _require_staff(actor)
    with transaction.atomic():
        locked = VerifiedDomain.objects.select_for_update().filter(pk=domain.pk).first()
        if locked is None:
            return
        if tenant is not None and locked.tenant_id != tenant.pk:
            raise SSOInputError("This domain is not claimed by your organisation.")
        ended = _end_links_under(locked) if locked.verified_at is not None else 0
        meta = {
            "domain": locked.domain,
            "before": {"verified": locked.verified_at is not None},
            "after": None,
            "identity_links_ended": ended,
        }
        if locked.tenant_id is not None:
            record(
                "sso.domain_release", tenant=locked.tenant_id, actor=_audit_actor(actor), target=locked, metadata=meta
            )
        if tenant is None:
            record("sso.domain_release", tenant=None, actor=_audit_actor(actor), target=locked, metadata=meta)
        locked.delete()


# --- automatic verification ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DomainCheck:
    """What one check of a claim found: ``status`` is stored on the claim; ``checked`` False if no lookup ran."""

    domain: str
    status: str
    checked: bool

    @property
    def verified(self) -> bool:
        return self.status == "verified"

    @property
    def message(self) -> str:
        return CHECK_MESSAGES.get(self.status, "The check did not run.").format(domain=self.domain)


def _resolver_config() -> dns.ResolverConfig:
    return dns.ResolverConfig(
        nameserver=settings.SSO_DNS_NAMESERVER, port=settings.SSO_DNS_PORT, timeout=settings.SSO_DNS_TIMEOUT
    )


def claim_expires_at(claim: VerifiedDomain) -> Any:
    """When a pending claim expires (``CLAIM_PENDING_DAYS`` after it was made)."""
    return claim.created_at + timedelta(days=CLAIM_PENDING_DAYS)


def _not_checked(domain_id: int, now: Any) -> DomainCheck:
    fresh = VerifiedDomain.objects.filter(pk=domain_id).first()
    if fresh is None:
        return DomainCheck(domain="", status="gone", checked=False)
    if fresh.verified_at is not None:
        return DomainCheck(domain=fresh.domain, status="verified", checked=False)
    if fresh.created_at <= now - timedelta(days=CLAIM_PENDING_DAYS):
        return DomainCheck(domain=fresh.domain, status="expired", checked=False)
    return DomainCheck(domain=fresh.domain, status="too_soon", checked=False)


def domain_check(*, domain: VerifiedDomain, actor: User | None, min_interval: timedelta | None = None) -> DomainCheck:
    """Look the claim's TXT record up and verify the claim if ``bastion-verify=<its token>`` is there.

    The caller has already scoped ``domain`` (the tenant's own claim, or the
    scheduler's). At most one lookup per claim per ``min_interval``: the check
    is claimed by a conditional UPDATE of ``last_checked_at`` (zero rows: someone
    checked a moment ago, or the claim is verified, expired or gone), which also
    makes a redelivered scheduler task harmless. The lookup runs outside any
    transaction (a slow DNS server holds no lock). Only the exact name counts,
    and only a whole TXT value equal to this claim's token; NXDOMAIN, SERVFAIL
    and timeouts never verify. ``actor`` (the admin who clicked, None for the
    scheduler) is the audit actor of a verification.
    """
    now = timezone.now()
    min_interval = CHECK_MIN_INTERVAL if min_interval is None else min_interval
    claimed = (
        VerifiedDomain.objects.filter(
            pk=domain.pk, verified_at__isnull=True, created_at__gt=now - timedelta(days=CLAIM_PENDING_DAYS)
        )
        .filter(Q(last_checked_at__isnull=True) | Q(last_checked_at__lte=now - min_interval))
        .update(last_checked_at=now)
    )
    if not claimed:
        return _not_checked(domain.pk, now)
    claim = VerifiedDomain.objects.get(pk=domain.pk)
    try:
        lookup = dns.txt_lookup(claim.domain, config=_resolver_config())
    except ValueError:  # not a valid DNS name (cannot happen for a normalised claim)
        lookup = dns.TxtLookup(dns.LookupStatus.FAILED)
    found = dns.has_token(lookup, claim.dns_token)
    status = "verified" if found else ("mismatch" if lookup.status == dns.LookupStatus.FOUND else lookup.status.value)
    with transaction.atomic():
        if found:
            # The token is this claim's own (tokens are never changed); the first proof of the domain wins.
            outcome, _ = _verify_first_proof(claim.pk, method=METHOD_DNS, verifier=None, note="", audit_actor=actor)
            return DomainCheck(domain=claim.domain, status=outcome, checked=True)
        locked = VerifiedDomain.objects.select_for_update(of=("self",)).filter(pk=claim.pk).first()
        if locked is None:
            return DomainCheck(domain=claim.domain, status="gone", checked=True)
        if locked.verified_at is not None:
            return DomainCheck(domain=locked.domain, status="verified", checked=True)
        locked.last_check_status = status
        locked.save(update_fields=["last_check_status"])
    return DomainCheck(domain=claim.domain, status=status, checked=True)


def domain_claims_sweep() -> list[int]:
    """Expire pending claims older than ``CLAIM_PENDING_DAYS``; return the ids of the others to check.

    Each expiry deletes the claim (the domain is free to be claimed again),
    is audited on the tenant's chain as ``sso.domain_expire`` and e-mailed to
    the claimants. Idempotent: a second run finds nothing more to expire.
    """
    cutoff = timezone.now() - timedelta(days=CLAIM_PENDING_DAYS)
    stale = list(
        VerifiedDomain.objects.filter(verified_at__isnull=True, created_at__lte=cutoff).values_list("pk", flat=True)
    )
    for domain_id in stale:
        with transaction.atomic():
            locked = (
                VerifiedDomain.objects.select_for_update(of=("self",))
                .filter(pk=domain_id, verified_at__isnull=True, created_at__lte=cutoff)
                .first()
            )
            if locked is None:
                continue
            meta = {"domain": locked.domain, "before": {"verified": False}, "after": None, "days": CLAIM_PENDING_DAYS}
            record("sso.domain_expire", tenant=locked.tenant_id, actor=_audit_actor(None), target=locked, metadata=meta)
            domain_notice_enqueue(
                tenant_id=locked.tenant_id, claimant_id=locked.claimed_by_id, domain=locked.domain, event=DOMAIN_EXPIRED
            )
            locked.delete()
    return selectors.pending_domain_ids()


def connection_for_email(email: str) -> SSOConnection | None:
    """Home-realm discovery: the enabled connection of whoever owns ``email``'s *verified* domain.

    ``None`` for an unusable address, an unclaimed or unverified domain, or an
    owner without an enabled connection (the person then signs in with a
    password). The domain's routed connection while it is enabled, else the
    owner's primary one (``selectors.discovery_connection``).
    """
    domain = email_domain(email)
    if not domain:
        return None
    claim = selectors.verified_domain_for(domain=domain)
    if claim is None:
        return None
    return selectors.discovery_connection(claim=claim)
