"""Verified e-mail domains: normalisation, claims, staff verification and release, and discovery by e-mail.

A tenant (or the platform) claims a domain, platform staff verify it, and only
then does it route sign-ins: ``connection_for_email`` finds the enabled
connection of the tenant that owns the address's verified domain. Shared
mailbox providers can never be claimed.
"""

from __future__ import annotations

import secrets
from typing import Any

import idna
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import User
from apps.audit.services import record
from apps.sso import selectors
from apps.sso.models import SSOConnection, VerifiedDomain
from apps.sso.services._common import _CONTROL_RE, _LABEL_RE, DOMAIN_MAX, SSOInputError, _audit_actor
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
    """Claim ``domain`` for ``tenant`` (the platform for None) with a fresh DNS TXT token; staff verify it later.

    A domain belongs to one tenant only; shared mailbox providers (gmail.com…)
    cannot be claimed. Raises SSOInputError (the message does not reveal which
    tenant holds a taken domain).
    """
    name = normalize_domain(domain)
    if name in PUBLIC_MAIL_DOMAINS:
        raise SSOInputError(
            f"{name} is a public e-mail provider; it cannot belong to one organisation.", field="domain"
        )
    taken = "This domain is already claimed. If it is yours, contact Bastion support."
    with transaction.atomic():
        existing = VerifiedDomain.objects.filter(domain=name).first()
        if existing is not None:
            if existing.tenant_id == (tenant.pk if tenant is not None else None):
                raise SSOInputError(f"{name} is already on your list.", field="domain")
            raise SSOInputError(taken, field="domain")
        try:
            with transaction.atomic():  # savepoint: a concurrent claim of the same domain ends as a form error
                claim = VerifiedDomain.objects.create(tenant=tenant, domain=name, dns_token=secrets.token_hex(16))
        except IntegrityError:
            raise SSOInputError(taken, field="domain") from None
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


def domain_verify(*, domain: VerifiedDomain, actor: User) -> VerifiedDomain:
    """Mark a claimed domain verified (platform staff only, after checking the DNS TXT record).

    From then on the tenant's SSO connections may provision people of that
    domain, and home-realm discovery sends them to the tenant's IdP. Audited
    on the tenant's and the platform's chain. Raises SSOInputError for a
    non-staff caller.
    """
    _require_staff(actor)
    with transaction.atomic():
        locked = VerifiedDomain.objects.select_for_update(of=("self",)).select_related("tenant").get(pk=domain.pk)
        if locked.verified_at is not None:
            return locked
        locked.verified_at = timezone.now()
        locked.verified_by = actor
        locked.save(update_fields=["verified_at", "verified_by"])
        meta = {"domain": locked.domain, "before": {"verified": False}, "after": {"verified": True}}
        if locked.tenant_id is not None:
            record(
                "sso.domain_verify", tenant=locked.tenant_id, actor=_audit_actor(actor), target=locked, metadata=meta
            )
        record(
            "sso.domain_verify",
            tenant=None,
            actor=_audit_actor(actor),
            target=locked,
            metadata={**meta, "tenant": locked.tenant.slug if locked.tenant else None},
        )
    return locked


def domain_release(*, domain: VerifiedDomain, actor: User | None, tenant: Tenant | None = None) -> None:
    """Remove a domain claim: by the owning tenant's admin (pass ``tenant``) or by platform staff.

    Once released, the domain's people are no longer provisioned by the
    tenant's connections (identities already linked keep working) and
    discovery stops routing them. Audited. Raises SSOInputError when ``tenant``
    does not own the claim, or a staff-only release is asked by someone else.
    """
    if tenant is None:
        _require_staff(actor)
    with transaction.atomic():
        locked = VerifiedDomain.objects.select_for_update().filter(pk=domain.pk).first()
        if locked is None:
            return
        if tenant is not None and locked.tenant_id != tenant.pk:
            raise SSOInputError("This domain is not claimed by your organisation.")
        meta = {
            "domain": locked.domain,
            "before": {"verified": locked.verified_at is not None},
            "after": None,
        }
        if locked.tenant_id is not None:
            record(
                "sso.domain_release", tenant=locked.tenant_id, actor=_audit_actor(actor), target=locked, metadata=meta
            )
        if tenant is None:
            record("sso.domain_release", tenant=None, actor=_audit_actor(actor), target=locked, metadata=meta)
        locked.delete()


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
