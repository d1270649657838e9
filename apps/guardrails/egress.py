"""Finding URLs in tool-call arguments and deciding whether their hosts may be reached.

Pure functions, no Django. The attacks this module exists for are parser
differentials: a string that our checker reads as one host and the HTTP client
behind the tool reads as another. So every URL is read twice — by
``urllib.parse.urlsplit`` and by a small reader that follows the WHATWG URL
standard for the parts that matter (backslashes, missing or extra slashes,
percent-encoded and numeric hosts) — and it passes only if both readings are
well-formed, agree (on the host and on the port), and name an allowlisted host
on a port the allowlist opens: an entry without a port opens only the scheme's
standard port (443, 80); ``host:port`` entries open other ports. Anything
unusual is denied rather than interpreted.

A URL is found wherever it appears in a string, not only when the whole
string is a URL: ``scheme://…``, ``scheme:\\…``, ``http:host`` (WHATWG treats
it as ``http://host``), a few well-known schemes without slashes (``file:``,
``gopher:``, …) and protocol-relative ``//host/…``.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field

from apps.catalog.hosts import Host, HostError, allowed_ports, canonical_host, host_allowed

ALLOWED_SCHEMES = frozenset({"http", "https"})
MAX_URL_LENGTH = 4096
# Schemes an SSRF payload uses without "//"; matched only when something follows the colon.
_BARE_SCHEMES = "file|gopher|dict|ldaps?|s?ftp|tftp|smb|jar|netdoc|data|javascript|wss?|https?"

_CANDIDATE_RE = re.compile(
    r"""
    [A-Za-z][A-Za-z0-9+.\-]{1,31}:[/\\]                         # scheme://, scheme:\\ (2+ letters: not C:\)
    | (?<![A-Za-z0-9+.\-])(?:"""
    + _BARE_SCHEMES
    + r"""):(?=[^\s/\\])                                       # http:evil.com, file:x, gopher:x
    | (?:^|(?<=[\s"'<>(\[{=,;|]))[/\\]{2}(?=[^/\\\s])            # //host/path at a token start
    """,
    re.VERBOSE | re.IGNORECASE,
)
# A URL in running text ends at whitespace or a delimiter that cannot be part of it.
_URL_END_RE = re.compile(r"""[\s"'<>`{}|^]""")
_TRAILING_PUNCTUATION = ".,;:!?)]}"


@dataclass(frozen=True, slots=True)
class EgressProblem:
    """Why one URL is refused: a stable code and a message that may name the URL's host."""

    code: str
    message: str


@dataclass(slots=True)
class ParsedURL:
    """What the two readings of a URL agreed on (or the problems that stopped them)."""

    scheme: str
    hosts: list[Host] = field(default_factory=list)
    port: int | None = None  # written in the URL; None: the scheme's standard port
    problems: list[EgressProblem] = field(default_factory=list)


def _scan(text: str) -> Iterator[str]:
    position = 0
    while True:
        match = _CANDIDATE_RE.search(text, position)
        if match is None:
            return
        # Bounded look-ahead: the host sits at the start, and an unbounded
        # search per candidate would make one long string quadratic.
        limit = match.start() + MAX_URL_LENGTH
        end_match = _URL_END_RE.search(text, match.end(), limit)
        end = end_match.start() if end_match else min(len(text), limit)
        candidate = text[match.start() : end].rstrip(_TRAILING_PUNCTUATION)
        # Resume inside the candidate: a URL nested in another's query
        # (``?next=https://evil.com``) is a URL in the arguments too.
        position = match.end()
        if candidate:
            yield candidate


def find_urls(text: str, *, limit: int) -> tuple[list[str], bool]:
    """The distinct URL-like substrings of ``text`` (nested ones too, and those hidden by one level of
    %-encoding), and whether the scan stopped early because it met more than ``limit`` candidates.

    Each URL is cut at MAX_URL_LENGTH characters (its host comes first), so
    the work is bounded by ``limit`` × MAX_URL_LENGTH whatever the input.
    """
    found: dict[str, None] = {}
    sources = [text]
    if "%" in text:
        decoded = urllib.parse.unquote(text)
        if decoded != text:
            sources.append(decoded)
    scanned = 0
    for source in sources:
        for url in _scan(source):
            scanned += 1
            if scanned > limit:
                return list(found), True
            found[url] = None
    return list(found), False


def _whatwg_authority(rest: str) -> tuple[int, str]:
    """How many slashes lead ``rest`` and the authority a WHATWG parser reads after them.

    For http(s) WHATWG treats ``\\`` like ``/`` and ignores how many slashes
    follow the scheme, so ``https:/\\evil.com`` names evil.com.
    """
    slashes = len(rest) - len(rest.lstrip("/\\"))
    after = rest[slashes:]
    end = len(after)
    for delimiter in "/\\?#":
        index = after.find(delimiter)
        if index != -1:
            end = min(end, index)
    return slashes, after[:end]


def _split_host(authority: str) -> tuple[str, str | None]:
    """Host and port text of an authority without user info; raises HostError if malformed."""
    if authority.startswith("["):
        close = authority.find("]")
        if close == -1:
            raise HostError("has an unterminated IPv6 literal")
        host, tail = authority[: close + 1], authority[close + 1 :]
        if tail and not tail.startswith(":"):
            raise HostError("has text after its IPv6 literal")
        port = tail[1:] if tail else None
    else:
        host, sep, port_text = authority.rpartition(":")
        if not sep:
            host, port = authority, None
        else:
            port = port_text
    if port is not None and port != "" and (not port.isascii() or not port.isdigit() or int(port) > 65535):
        raise HostError("has an invalid port")
    return host, port


def parse_url(candidate: str) -> ParsedURL:
    """Read ``candidate`` both ways; the result lists every host it could reach and every problem."""
    match = re.match(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", candidate, re.DOTALL)
    scheme, rest = (match.group(1).lower(), match.group(2)) if match else ("", candidate)
    parsed = ParsedURL(scheme=scheme or "(protocol-relative)")
    problems = parsed.problems
    if scheme and scheme not in ALLOWED_SCHEMES:
        problems.append(EgressProblem("egress_scheme", f"scheme “{scheme}:” is not allowed (only http and https)"))
        return parsed

    # Reading 1: WHATWG, as browsers, Node and most non-Python clients do.
    slashes, authority = _whatwg_authority(rest)
    if rest[:slashes] != "//":
        problems.append(EgressProblem("egress_malformed_url", "URL must have exactly “//” before the host"))
    # A backslash up to and including the character that ends the authority
    # is read as a path separator by WHATWG and as host text by urllib.
    if "\\" in rest[: slashes + len(authority) + 1]:
        problems.append(EgressProblem("egress_malformed_url", "URL has a backslash where clients disagree on the host"))
    if "@" in authority:
        problems.append(EgressProblem("egress_userinfo", "URL carries a user name or password before “@”"))
    readings: list[Host] = []
    ports: set[int | None] = set()
    try:
        host_text, port_text = _split_host(authority.rpartition("@")[2])
        ports.add(int(port_text) if port_text else None)  # WHATWG: an empty port is the default
        if "%" in host_text:
            raise HostError("is percent-encoded")
        host = canonical_host(host_text)
        readings.append(host)
        if host.kind == "ip" and not host_text.startswith("[") and host_text.rstrip(".") != host.value:
            problems.append(
                EgressProblem("egress_ip_obfuscated", f"IP address {host.value} is written in a non-standard form")
            )
    except HostError as exc:
        problems.append(EgressProblem("egress_malformed_url", f"URL host {exc}"))

    # Reading 2: urllib, as Python clients do.
    try:
        split = urllib.parse.urlsplit(candidate)
        python_host = split.hostname
        python_port = split.port  # raises ValueError for a bad port
        if python_host:
            ports.add(python_port)
    except ValueError:
        python_host = None
        problems.append(EgressProblem("egress_malformed_url", "URL does not parse"))
    if python_host:
        try:
            host = canonical_host(f"[{python_host}]" if ":" in python_host else python_host)
        except HostError as exc:
            problems.append(EgressProblem("egress_malformed_url", f"URL host {exc}"))
        else:
            if host not in readings:
                readings.append(host)
    if len(readings) > 1:
        problems.append(EgressProblem("egress_ambiguous_url", "URL parsers disagree about its host"))
    if len(ports) > 1:
        problems.append(EgressProblem("egress_ambiguous_url", "URL parsers disagree about its port"))
    parsed.port = next(iter(ports)) if len(ports) == 1 else None
    if not readings and not problems:
        problems.append(EgressProblem("egress_malformed_url", "URL has no host"))
    parsed.hosts = readings
    return parsed


def check_url(candidate: str, allowlist: list[str] | tuple[str, ...]) -> list[EgressProblem]:
    """Every problem with reaching ``candidate`` under ``allowlist``; empty means allowed."""
    parsed = parse_url(candidate)
    problems = list(parsed.problems)
    scheme = parsed.scheme if parsed.scheme in ("http", "https") else ""
    for host in parsed.hosts:
        if host_allowed(host, allowlist, port=parsed.port, scheme=scheme):
            continue
        opened = allowed_ports(host, allowlist, scheme=scheme)
        if opened:
            name = f"[{host.value}]" if ":" in host.value else host.value
            if parsed.port is None:
                message = f"the standard port of host {host.value} is not in the tool's egress allowlist"
            else:
                message = (
                    f"port {parsed.port} of host {host.value} is not in the tool's egress allowlist "
                    f"(an entry {name}:{parsed.port} would allow it)"
                )
            problems.append(EgressProblem("egress_port_not_allowed", message))
        elif host.kind == "ip":
            problems.append(
                EgressProblem("egress_ip_literal", f"IP address {host.value} is not in the tool's egress allowlist")
            )
        else:
            problems.append(
                EgressProblem("egress_host_not_allowed", f"host {host.value} is not in the tool's egress allowlist")
            )
    return problems
