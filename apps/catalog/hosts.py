"""Host names and IP literals: one normalisation for egress allowlists and URL checks.

Pure functions, no Django. The allowlist a tenant admin types and the host
found in a tool-call URL go through the same code, so they compare as equal
strings or not at all — never as substrings.

Rules:
- a DNS name is IDNA-encoded (Python's IDNA 2003 codec), lower-cased, loses one
  trailing dot, and must then be letters, digits and hyphens in labels of 1–63
  characters, 253 at most in all;
- the four "deviation" characters (ß, final sigma, ZWJ, ZWNJ) are refused: IDNA
  2003 maps them away while IDNA 2008/UTS 46 clients keep them, so the host we
  check and the host an HTTP client resolves would differ;
- a host whose last label is a number (``2130706433``, ``0x7f.1``, ``127.1``)
  is an IPv4 address in the WHATWG URL standard and in ``inet_aton``, so it is
  parsed as one (decimal, octal and hex parts) — never treated as a name;
- IPv6 literals are written in brackets in URLs; zone ids are refused.

Ports: an allowlist entry without a port allows only the standard port of the
URL's scheme (443 for https, 80 for http); any other port must be listed as
``host:port`` (``[2001:db8::1]:8443`` for IPv6), and such an entry allows that
port only, whatever the scheme. So ``api.example.com`` does not open
``https://api.example.com:6379/``.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

MAX_HOST_LENGTH = 253
STANDARD_PORTS = {"http": 80, "https": 443}
MAX_LABEL_LENGTH = 63
WILDCARD_PREFIX = "*."

_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_NUMERIC_LABEL_RE = re.compile(r"^(?:[0-9]+|0x[0-9a-f]*)$", re.IGNORECASE)
_DEVIATIONS = frozenset("\u00df\u03c2\u200c\u200d")
# Characters that can never appear in a host; their presence means a scheme,
# path, port, user name or query slipped into what should be a bare host.
_NOT_IN_HOST = frozenset("/\\?#@:%[] \t\r\n")


class HostError(ValueError):
    """The text is not a usable host; the message is for the user."""


@dataclass(frozen=True, slots=True)
class Host:
    """A canonical host: ``kind`` is "dns" or "ip"; ``value`` compares by equality."""

    kind: Literal["dns", "ip"]
    value: str


def _idna_ascii(host: str) -> str:
    if any(char in _DEVIATIONS for char in host):
        raise HostError("contains ß, ς or a zero-width joiner, which IDNA versions map differently")
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise HostError("is not a valid international domain name") from None
    ascii_host = ascii_host.lower()
    if ascii_host.endswith("."):
        ascii_host = ascii_host[:-1]
    if not ascii_host:
        raise HostError("is empty")
    return ascii_host


def _ipv4_part(text: str) -> int:
    if not text:
        raise HostError("is not a valid IPv4 address")
    if text[:2] in ("0x", "0X"):
        digits, base = text[2:], 16
        if not digits:
            return 0
    elif len(text) > 1 and text.startswith("0"):
        digits, base = text[1:], 8
    else:
        digits, base = text, 10
    allowed = {16: "0123456789abcdefABCDEF", 8: "01234567", 10: "0123456789"}[base]
    if not digits or any(char not in allowed for char in digits):
        raise HostError("is not a valid IPv4 address")
    return int(digits, base)


def ipv4_number_form(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address a host denotes under the WHATWG URL rules, or None if it is a name.

    ``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and ``127.1`` all denote
    127.0.0.1. A host that ends in a number but does not parse raises HostError
    (browsers refuse such URLs; so do we).
    """
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    if not _NUMERIC_LABEL_RE.match(parts[-1]):
        return None
    if len(parts) > 4:
        raise HostError("is not a valid IPv4 address")
    numbers = [_ipv4_part(part) for part in parts]
    if any(number > 255 for number in numbers[:-1]) or numbers[-1] >= 256 ** (5 - len(numbers)):
        raise HostError("is not a valid IPv4 address")
    value = numbers[-1]
    for index, number in enumerate(numbers[:-1]):
        value += number * 256 ** (3 - index)
    return ipaddress.IPv4Address(value)


def _dns_name(ascii_host: str) -> str:
    if len(ascii_host) > MAX_HOST_LENGTH:
        raise HostError(f"is longer than {MAX_HOST_LENGTH} characters")
    labels = ascii_host.split(".")
    for label in labels:
        if not _LABEL_RE.match(label):
            raise HostError("may use only letters, digits, hyphens and dots (labels of 1–63 characters)")
        if label.startswith("xn--"):
            try:
                label.encode("ascii").decode("idna")
            except UnicodeError:
                raise HostError("contains an invalid punycode label") from None
    return ascii_host


def canonical_host(raw: str) -> Host:
    """The canonical form of a host taken from a URL authority (port and user info removed).

    Raises HostError when the text is not a host at all.
    """
    if raw.startswith("[") and raw.endswith("]"):
        inner = raw[1:-1]
        if "%" in inner:
            raise HostError("has an IPv6 zone id")
        try:
            return Host("ip", str(ipaddress.IPv6Address(inner)))
        except ValueError:
            raise HostError("is not a valid IPv6 address") from None
    if not raw or any(char in _NOT_IN_HOST for char in raw):
        raise HostError("is not a host name")
    ascii_host = _idna_ascii(raw)
    address = ipv4_number_form(ascii_host)
    if address is not None:
        return Host("ip", str(address))
    return Host("dns", _dns_name(ascii_host))


def _port(text: str) -> int:
    if not text or not text.isascii() or not text.isdigit() or not 0 < int(text) <= 65535:
        raise HostError("has an invalid port (use a number from 1 to 65535)")
    return int(text)


def _host_entry(text: str) -> str:
    """The canonical host part of an entry (no port): a name, a ``*.`` wildcard or an IP address."""
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        address = None
    if address is not None:
        return str(address)
    wildcard = text.startswith(WILDCARD_PREFIX)
    base = text[len(WILDCARD_PREFIX) :] if wildcard else text
    if "*" in base:
        raise HostError("may use a wildcard only as a leading “*.”")
    host = canonical_host(base)
    if host.kind == "ip":
        raise HostError("looks like an IP address; write IPv4 addresses as four decimal numbers (203.0.113.7)")
    if wildcard and "." not in host.value:
        raise HostError("wildcard needs at least two labels after “*.” (e.g. *.example.com)")
    return WILDCARD_PREFIX + host.value if wildcard else host.value


def normalise_allowlist_entry(raw: str) -> str:
    """One egress allowlist entry in canonical form, or HostError saying what is wrong.

    Accepts a host name (``api.example.com``, ``bücher.example``), a leading
    wildcard for sub-domains (``*.example.com``: any depth, not the apex), or an
    IP literal written plainly (``203.0.113.7``, ``2001:db8::1`` or
    ``[2001:db8::1]``), each optionally followed by ``:port``
    (``api.example.com:8443``, ``[2001:db8::1]:8443``). Refuses schemes, paths,
    user names and the integer/octal/hex IPv4 spellings.
    """
    text = raw.strip()
    if not text:
        raise HostError("is empty")
    if "://" in text or text.startswith("//"):
        raise HostError("must be a host name without a scheme (drop “https://”)")
    if "@" in text:
        raise HostError("must not contain a user name (“@”)")
    if any(char in text for char in "/\\?#"):
        raise HostError("must be a host name without a path or query")
    if "%" in text or any(char.isspace() for char in text):
        raise HostError("must not contain “%” or spaces")
    if text.startswith("["):
        close = text.find("]")
        if close == -1:
            raise HostError("has an unterminated “[”")
        inner, tail = text[1:close], text[close + 1 :]
        if tail and not tail.startswith(":"):
            raise HostError("has text after its IPv6 address")
        port = _port(tail[1:]) if tail else None
        try:
            address = ipaddress.ip_address(inner)
        except ValueError:
            raise HostError("is not a valid IPv6 address") from None
        if port is None:
            return str(address)
        return f"[{address}]:{port}" if address.version == 6 else f"{address}:{port}"
    if text.count(":") > 1:
        try:
            return str(ipaddress.IPv6Address(text))
        except ValueError:
            raise HostError("is not a valid IPv6 address (with a port, write [2001:db8::1]:8443)") from None
    host_text, sep, port_text = text.partition(":")
    host = _host_entry(host_text)
    return f"{host}:{_port(port_text)}" if sep else host


def split_allowlist_entry(entry: str) -> tuple[str, int | None]:
    """A canonical entry's host part and its port (``None``: the scheme's standard port)."""
    if entry.startswith("["):
        address, _, port = entry[1:].partition("]:")
        return address, int(port)
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry, None


def _host_matches(host: Host, pattern: str) -> bool:
    if host.kind == "ip":
        return host.value == pattern
    if pattern.startswith(WILDCARD_PREFIX):
        return host.value.endswith("." + pattern[len(WILDCARD_PREFIX) :])
    return host.value == pattern


def allowed_ports(host: Host, allowlist: list[str] | tuple[str, ...], *, scheme: str = "") -> set[int]:
    """Every port the allowlist opens on ``host`` for a URL with ``scheme`` (empty: the host is not listed).

    An entry without a port opens the scheme's standard port (both 80 and 443
    when the scheme is unknown, as in ``//host/``); ``host:port`` opens that port.
    """
    standard = {STANDARD_PORTS[scheme]} if scheme in STANDARD_PORTS else set(STANDARD_PORTS.values())
    ports: set[int] = set()
    for entry in allowlist:
        pattern, port = split_allowlist_entry(entry)
        if _host_matches(host, pattern):
            ports |= standard if port is None else {port}
    return ports


def host_allowed(
    host: Host, allowlist: list[str] | tuple[str, ...], *, port: int | None = None, scheme: str = ""
) -> bool:
    """Is ``host`` on ``port`` (``None``: no port in the URL, so the scheme's standard one) covered?

    IP literals match only an identical IP entry; names match an identical
    entry or a ``*.`` entry whose base they end with at a label boundary; the
    port must be one the matching entries open (see ``allowed_ports``).
    """
    opened = allowed_ports(host, allowlist, scheme=scheme)
    if port is not None:
        return port in opened
    wanted = {STANDARD_PORTS[scheme]} if scheme in STANDARD_PORTS else set(STANDARD_PORTS.values())
    return bool(opened) and wanted <= opened
