"""The one HTTP client for URLs that someone outside the installation chooses (SSRF-safe).

Tenant admins type IdP metadata URLs and OpenID Connect issuers, and an IdP's
discovery document names further URLs (JWKS, token endpoint). Each of those is
fetched through ``fetch`` here, so the server never becomes a window into its
own network:

- **Resolve once, check every address, connect to the checked one.** The host
  is resolved a single time; every address it resolves to must be allowed
  (see ``address_problem``); the connection then goes to that address while
  TLS still sends SNI for, and verifies the certificate of, the host name and
  the ``Host`` header names the host. A second DNS answer (rebinding) is never
  asked for. A name that does not resolve is refused.
- **Addresses.** Refused always: link-local (169.254.0.0/16 — the cloud
  metadata service — and fe80::/10), multicast, unspecified, reserved,
  0.0.0.0/8, and IPv6 forms that embed a refused IPv4 address (IPv4-mapped,
  NAT64 64:ff9b::/96, 6to4). Private networks (RFC 1918, CGNAT, ULA) only when
  the policy's ``allow_private`` is on; loopback only when ``allow_loopback``
  is on (development and tests).
- **Schemes and ports.** https only, to the policy's ports (443 by default).
  Plain http, and any port, only to loopback when ``allow_loopback`` is on.
  No user name or password in the URL.
- **Redirects** are not followed by the HTTP library: ``fetch`` follows at most
  ``max_redirects`` itself (GET only), checking each hop like the first.
- **Caps.** The body is streamed and cut at ``max_bytes`` (uncompressed: only
  identity encoding is accepted); connect and each read wait at most the
  remaining time, and the whole exchange, redirects included, must finish
  within ``timeout`` seconds.
- No proxies or netrc from the environment: the address is pinned.

Failures raise ``FetchError`` whose ``code`` is stable and whose message
completes a sentence about the URL ("The metadata URL …"). This module uses
nothing of Bastion's own apps.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3
from django.conf import settings
from requests.adapters import HTTPAdapter

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_PORTS = {"https": 443, "http": 80}
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_READ_CHUNK = 64 * 1024

_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # "this host" on Linux: 0.0.0.1 can reach local services
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # carrier-grade NAT: a private network in all but name
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the well-known NAT64 prefix embeds an IPv4 address


class FetchError(Exception):
    """A fetch that was refused or failed. ``message`` completes “The … URL …”; ``code`` is stable."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """Which destinations a fetch may reach. The defaults are the production ones."""

    allow_private: bool = False
    allow_loopback: bool = False
    allowed_ports: frozenset[int] = frozenset({443})
    ca_bundle: str | None = None

    @classmethod
    def from_settings(cls) -> FetchPolicy:
        """The installation's policy for outbound identity-provider fetches.

        ``SSO_FETCH_ALLOW_PRIVATE`` (the one private-network switch; the old
        ``SSO_ALLOW_PRIVATE_NETWORK_IDP`` is still read), loopback when ``DEBUG`` or
        ``SSO_ALLOW_INSECURE_LOOPBACK``, ports from ``SSO_FETCH_ALLOWED_PORTS`` (443)
        and a private CA bundle from ``SSO_METADATA_CA_BUNDLE`` (public roots when unset).
        """
        allow_private = getattr(settings, "SSO_FETCH_ALLOW_PRIVATE", None)
        if allow_private is None:
            allow_private = getattr(settings, "SSO_ALLOW_PRIVATE_NETWORK_IDP", False)
        return cls(
            allow_private=bool(allow_private),
            allow_loopback=bool(settings.DEBUG or getattr(settings, "SSO_ALLOW_INSECURE_LOOPBACK", False)),
            allowed_ports=frozenset(int(port) for port in getattr(settings, "SSO_FETCH_ALLOWED_PORTS", (443,))),
            ca_bundle=getattr(settings, "SSO_METADATA_CA_BUNDLE", None) or None,
        )


@dataclass(frozen=True, slots=True)
class FetchResponse:
    """What came back: the final URL (after redirects), status, headers and the capped body."""

    url: str
    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)

    def header(self, name: str) -> str:
        return self.headers.get(name) or ""


@dataclass(frozen=True, slots=True)
class Target:
    """A checked destination: connect to ``address`` on ``port`` while speaking to ``host``."""

    scheme: str
    host: str
    port: int
    address: str
    path: str
    query: str


# --- checks -----------------------------------------------------------------------------------


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def address_problem(address: str | IPAddress, *, policy: FetchPolicy) -> str | None:
    """Why ``address`` may not be connected to (a sentence fragment), or ``None`` if it may."""
    ip = ipaddress.ip_address(str(address).split("%", 1)[0]) if isinstance(address, str) else address
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        problem = address_problem(embedded, policy=policy)
        if problem:
            return problem
    if ip.is_loopback:
        return None if policy.allow_loopback else "points to a private or reserved network address (loopback)"
    if ip.is_link_local or ip.is_multicast or ip.is_unspecified or ip.is_reserved or ip in _THIS_NETWORK:
        return "points to a private or reserved network address"
    if ip.is_global and ip not in _SHARED:
        return None
    if policy.allow_private and (ip.is_private or ip in _SHARED):
        return None
    return "points to a private or reserved network address"


def _is_loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    embedded = _embedded_ipv4(ip)
    return ip.is_loopback or (embedded is not None and embedded.is_loopback)


def url_problem(url: str, *, policy: FetchPolicy) -> FetchError | None:
    """What is wrong with ``url`` before anything is resolved (scheme, credentials, host), or ``None``."""
    if not isinstance(url, str):
        return FetchError("invalid_url", "is not a valid URL")
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return FetchError("invalid_url", "is not a valid URL")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return FetchError("scheme", "is not an https URL")
    if not host:
        return FetchError("invalid_url", "is not a valid URL")
    if parts.username is not None or parts.password is not None:
        return FetchError("userinfo", "must not contain a user name or password")
    if scheme == "http":
        if host.lower() not in LOOPBACK_NAMES:
            return FetchError("scheme", "is not an https URL")
        if not policy.allow_loopback:
            return FetchError("plain_http", "uses plain http (allowed only for 127.0.0.1 or localhost in development)")
    return None


def resolve(url: str, *, policy: FetchPolicy) -> Target:
    """Check ``url``, resolve its host once and check every address; return where to connect.

    Raises ``FetchError`` (``invalid_url``, ``scheme``, ``userinfo``, ``plain_http``,
    ``unresolvable``, ``address``, ``port``).
    """
    problem = url_problem(url, policy=policy)
    if problem:
        raise problem
    parts = urlsplit(url.strip())
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    port = parts.port or DEFAULT_PORTS[scheme]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise FetchError("unresolvable", f"has a host name ({host}) that could not be resolved") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not addresses:
        raise FetchError("unresolvable", f"has a host name ({host}) that could not be resolved")
    for address in addresses:
        reason = address_problem(address, policy=policy)
        if reason:
            raise FetchError("address", reason)
    loopback = policy.allow_loopback and all(_is_loopback(address) for address in addresses)
    if scheme == "http" and not loopback:
        raise FetchError("scheme", "is not an https URL")  # "localhost" that resolves elsewhere
    if not loopback and port not in policy.allowed_ports:
        allowed = ", ".join(str(p) for p in sorted(policy.allowed_ports)) or "none"
        raise FetchError("port", f"uses port {port}; only {allowed} may be used")
    return Target(scheme=scheme, host=host, port=port, address=addresses[0], path=parts.path or "/", query=parts.query)


# --- the pinned connection --------------------------------------------------------------------


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class _PinnedAdapter(HTTPAdapter):
    """Connects to the URL's (already checked) IP address while TLS verifies the real host name."""

    def __init__(self, hostname: str | None) -> None:
        self._hostname = hostname
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        if self._hostname:
            kwargs["server_hostname"] = self._hostname  # SNI
            kwargs["assert_hostname"] = self._hostname  # certificate check
        super().init_poolmanager(*args, **kwargs)


def _send(
    method: str,
    target: Target,
    *,
    policy: FetchPolicy,
    deadline: float,
    timeout: float,
    data: Mapping[str, str] | None,
    headers: Mapping[str, str],
) -> requests.Response:
    address = f"[{target.address}]" if ":" in target.address else target.address
    pinned = urlunsplit((target.scheme, f"{address}:{target.port}", target.path, target.query, ""))
    host = f"[{target.host}]" if ":" in target.host else target.host
    default = DEFAULT_PORTS[target.scheme] == target.port
    session = requests.Session()
    session.trust_env = False  # no proxy or netrc from the environment: the address is pinned
    session.verify = policy.ca_bundle or True
    session.mount(f"{target.scheme}://", _PinnedAdapter(None if _is_ip_literal(target.host) else target.host))
    remaining = max(0.05, min(timeout, deadline - time.monotonic()))
    try:
        return session.request(
            method,
            pinned,
            data=data,
            headers={
                **headers,
                "Host": host if default else f"{host}:{target.port}",
                "Accept-Encoding": "identity",  # no decompression bombs: the cap counts what arrives
            },
            timeout=(remaining, remaining),
            allow_redirects=False,
            stream=True,
        )
    except requests.exceptions.SSLError as exc:
        raise FetchError("tls", "presented a TLS certificate that could not be verified") from exc
    except requests.exceptions.Timeout as exc:
        raise FetchError("timeout", f"timed out after {timeout:g} s") from exc
    except requests.exceptions.ConnectionError as exc:
        if "timed out" in str(exc).lower():
            raise FetchError("timeout", f"timed out after {timeout:g} s") from exc
        raise FetchError("connect", "could not be reached") from exc
    except requests.exceptions.RequestException as exc:
        raise FetchError("fetch", f"could not be fetched ({type(exc).__name__})") from exc


def _read_capped(response: requests.Response, *, max_bytes: int, deadline: float, timeout: float) -> bytes:
    too_large = FetchError("too_large", f"is larger than {max_bytes // 1024} KiB")
    declared = response.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise too_large
    if response.headers.get("Content-Encoding", "identity").strip().lower() not in ("", "identity"):
        raise FetchError("encoding", "sent compressed content although none was asked for")
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if time.monotonic() > deadline:
                raise FetchError("timeout", f"timed out after {timeout:g} s")
            # read1 returns what has arrived (each wait bounded by the read timeout), so a server
            # that drips bytes still meets the overall deadline, at worst one read late.
            chunk = response.raw.read1(_READ_CHUNK, decode_content=False)
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                raise too_large
            chunks.append(chunk)
    except (urllib3.exceptions.HTTPError, requests.RequestException, OSError) as exc:
        raise FetchError("timeout", f"timed out or was cut off (limit {timeout:g} s)") from exc
    return b"".join(chunks)


def fetch(
    method: str,
    url: str,
    *,
    max_bytes: int,
    timeout: float = 10,
    max_redirects: int = 0,
    policy: FetchPolicy | None = None,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> FetchResponse:
    """Send one request under ``policy`` (the settings' one by default) and return the capped response.

    Redirects (GET only) are followed up to ``max_redirects`` times, each hop
    resolved and checked afresh; with ``max_redirects=0`` a redirect raises
    ``FetchError("redirect")``. Any status other than a redirect is returned
    for the caller to judge. Raises ``FetchError`` for every refusal and
    failure (see the module docstring).
    """
    policy = policy or FetchPolicy.from_settings()
    deadline = time.monotonic() + timeout
    current = url.strip()
    sent_headers = dict(headers or {})
    for _ in range(max_redirects + 1):
        target = resolve(current, policy=policy)
        response = _send(
            method, target, policy=policy, deadline=deadline, timeout=timeout, data=data, headers=sent_headers
        )
        try:
            if response.status_code in REDIRECT_STATUSES:
                if max_redirects == 0 or method.upper() != "GET":
                    raise FetchError(
                        "redirect", f"redirects elsewhere (HTTP {response.status_code}); configure the final URL"
                    )
                location = response.headers.get("Location", "")
                if not location:
                    raise FetchError("redirect", "redirected without a Location")
                current = urljoin(current, location.strip())
                continue
            body = _read_capped(response, max_bytes=max_bytes, deadline=deadline, timeout=timeout)
            return FetchResponse(url=current, status=response.status_code, headers=response.headers, body=body)
        finally:
            response.close()
    raise FetchError("too_many_redirects", f"redirected more than {max_redirects} times")
