"""DNS TXT lookups for e-mail domain verification (pure protocol: no database, no Django models).

A tenant proves it controls a domain by publishing ``bastion-verify=<token>``
as a TXT record on exactly that name. This module asks the resolver and says
what it found; ``apps.sso.services.domains`` decides what that means.

Why the care:

- Only the exact name is asked, as an absolute name (trailing dot), so the
  resolver's search list never turns ``acme.com`` into ``acme.com.corp.local``;
  a record on a sub-domain or the parent never counts.
- A TXT record may be split into several character-strings (each at most 255
  bytes); they are joined without a separator, as SPF and DKIM readers do.
- An answer is untrusted input: at most ``MAX_RECORDS`` records of at most
  ``MAX_RECORD_BYTES`` each are read; non-ASCII values are skipped.
- Every failure is a status, never an exception: NXDOMAIN, an empty answer,
  SERVFAIL (``NoNameservers``) and a timeout all mean "not verified", and the
  caller can tell the admin which one it was.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from enum import StrEnum

import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

TOKEN_PREFIX = "bastion-verify="  # noqa: S105  (a record label, not a secret)
MAX_RECORDS = 50
MAX_RECORD_BYTES = 2048


class LookupStatus(StrEnum):
    """What a TXT lookup found (stored on the claim as its last check result)."""

    FOUND = "found"  # the name has TXT records (the expected one may or may not be among them)
    NO_RECORDS = "no_records"  # the name exists but has no TXT record
    NXDOMAIN = "nxdomain"  # the name does not exist
    TIMEOUT = "timeout"
    FAILED = "failed"  # SERVFAIL/REFUSED from every nameserver, or another resolver error


@dataclass(frozen=True, slots=True)
class TxtLookup:
    """The TXT values found on one name (joined strings, decoded), and the lookup's status."""

    status: LookupStatus
    values: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class ResolverConfig:
    """Which resolver to ask: ``nameserver`` '' means the system's (``/etc/resolv.conf``)."""

    nameserver: str = ""
    port: int = 53
    timeout: float = 5.0


def _resolver(config: ResolverConfig) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=not config.nameserver)
    if config.nameserver:
        resolver.nameservers = [config.nameserver]
        resolver.port = config.port
    # ``lifetime`` bounds the whole lookup (all retries and servers); ``timeout`` one attempt.
    resolver.lifetime = config.timeout
    resolver.timeout = config.timeout
    resolver.use_search_by_default = False
    return resolver


def _decode(strings: tuple[bytes, ...]) -> str | None:
    joined = b"".join(strings)
    if len(joined) > MAX_RECORD_BYTES:
        return None
    try:
        return joined.decode("ascii")
    except UnicodeDecodeError:
        return None


def txt_lookup(domain: str, *, config: ResolverConfig) -> TxtLookup:
    """The TXT records on exactly ``domain`` (an IDNA/ASCII name), asked of ``config``'s resolver.

    Never raises for DNS trouble: the status says what happened. Raises
    ValueError only for a name that is not a valid DNS name.
    """
    name = dns.name.from_text(domain.rstrip(".") + ".")
    try:
        answer = _resolver(config).resolve(name, dns.rdatatype.TXT, search=False, raise_on_no_answer=False)
    except dns.resolver.NXDOMAIN:
        return TxtLookup(LookupStatus.NXDOMAIN)
    except (dns.resolver.LifetimeTimeout, dns.exception.Timeout):
        return TxtLookup(LookupStatus.TIMEOUT)
    except (dns.resolver.NoNameservers, dns.exception.DNSException):
        return TxtLookup(LookupStatus.FAILED)
    if answer.rrset is None:
        return TxtLookup(LookupStatus.NO_RECORDS)
    values: list[str] = []
    for rdata in list(answer.rrset)[:MAX_RECORDS]:
        value = _decode(tuple(rdata.strings))
        if value is not None:
            values.append(value)
    return TxtLookup(LookupStatus.FOUND, tuple(values))


def _normalise(value: str) -> str:
    # Some DNS consoles store the quotes an admin typed as part of the value: "bastion-verify=…".
    text = value.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        text = text[1:-1].strip()
    return text


def has_token(lookup: TxtLookup, token: str) -> bool:
    """Whether one TXT value is exactly ``bastion-verify=<token>`` (prefix and hex token case-insensitive).

    The whole value must match: the token inside a longer value, another
    tenant's token or an empty token never count.
    """
    if lookup.status != LookupStatus.FOUND or not token:
        return False
    expected = (TOKEN_PREFIX + token).lower().encode("ascii")
    return any(hmac.compare_digest(_normalise(value).lower().encode("ascii"), expected) for value in lookup.values)
