"""Egress: URLs anywhere in the arguments must be http(s), unambiguous and on the tool's allowlist.

Each attack is a string that one parser reads as an allowlisted host and an
HTTP client reads as another (or as an internal address). All are denied;
legitimate allowlisted hosts and wildcard sub-domains pass.
"""

from __future__ import annotations

import pytest

from apps.guardrails.egress import check_url, find_urls
from apps.guardrails.services import check_tool_call
from tests.catalog.factories import ToolFactory

pytestmark = pytest.mark.django_db

# Non-standard ports are listed explicitly (host:port): an entry without a port opens 443/80 only.
ALLOWLIST = [
    "api.example.com",
    "api.example.com:8080",
    "*.example.org",
    "203.0.113.7",
    "2001:db8::1",
    "[2001:db8::1]:8443",
]

LEGIT = [
    "https://api.example.com/v1/search?q=cats",
    "http://api.example.com:8080/x",
    "https://API.Example.COM./x",
    "https://eu.example.org/x",
    "https://a.b.example.org/deep",
    "https://xn--bcher-kva.example.org/",
    "https://bücher.example.org/",
    "https://203.0.113.7/status",
    "http://[2001:db8::1]:8443/",
]

# (url, a code the denial must carry)
ATTACKS = [
    ("https://api.example.com@evil.com/", "egress_host_not_allowed"),
    ("https://api.example.com@evil.com/", "egress_userinfo"),
    ("https://user:pass@api.example.com/", "egress_userinfo"),
    ("http://evil.com\\@api.example.com", "egress_ambiguous_url"),
    ("http://evil.com\\@api.example.com", "egress_host_not_allowed"),
    ("https://api.example.com.evil.com/", "egress_host_not_allowed"),
    ("https://evilapi.example.com/", "egress_host_not_allowed"),
    ("https://example.org/", "egress_host_not_allowed"),  # the wildcard is for sub-domains only
    ("https://example.org.evil.com/", "egress_host_not_allowed"),
    ("http://127.0.0.1/", "egress_ip_literal"),
    ("http://169.254.169.254/latest/meta-data/", "egress_ip_literal"),
    ("http://[::1]/", "egress_ip_literal"),
    ("http://[::ffff:127.0.0.1]/", "egress_ip_literal"),
    ("http://[fe80::1%25eth0]/", "egress_malformed_url"),
    ("http://2130706433/", "egress_ip_literal"),
    ("http://0x7f.1/", "egress_ip_literal"),
    ("http://0x7f000001/", "egress_ip_literal"),
    ("http://0177.0.0.1/", "egress_ip_literal"),
    ("http://127.1/", "egress_ip_literal"),
    ("http://0313.0.113.7/", "egress_ip_obfuscated"),  # 203.0.113.7 is allowlisted, but not spelled like this
    ("http://3405803783/", "egress_ip_obfuscated"),
    ("ftp://api.example.com/file", "egress_scheme"),
    ("file:///etc/passwd", "egress_scheme"),
    ("gopher://api.example.com:70/_payload", "egress_scheme"),
    ("file:/etc/passwd", "egress_scheme"),
    ("data:text/html,hi", "egress_scheme"),
    ("//evil.com/path", "egress_host_not_allowed"),
    ("https:evil.com", "egress_malformed_url"),
    ("https:evil.com", "egress_host_not_allowed"),
    ("https:///evil.com", "egress_malformed_url"),
    ("https:\\\\evil.com", "egress_host_not_allowed"),
    ("https://api%2eexample.com/", "egress_malformed_url"),
    ("https://api.example.com:99999/", "egress_malformed_url"),
    ("https://straße.example.org/", "egress_malformed_url"),
]


@pytest.mark.parametrize("url", LEGIT)
def test_allowlisted_hosts_pass(url: str) -> None:
    assert check_url(url, ALLOWLIST) == []


@pytest.mark.parametrize(("url", "code"), ATTACKS)
def test_egress_tricks_are_denied(url: str, code: str) -> None:
    assert code in [problem.code for problem in check_url(url, ALLOWLIST)]


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("fetch https://evil.com/x, then //other.com/y", ["https://evil.com/x", "//other.com/y"]),
        ("<a href='https://evil.com'>", ["https://evil.com"]),
        (
            "https://api.example.com/?next=https://evil.com",
            ["https://api.example.com/?next=https://evil.com", "https://evil.com"],
        ),
        ("u=https%3A%2F%2Fevil.com%2F", ["https://evil.com/"]),
        ("1https://evil.com", ["https://evil.com"]),
        ("plain words: 12:30, a/b, C:\\Users\\me, metadata:x", []),
    ],
)
def test_urls_are_found_anywhere_in_a_string(text: str, urls: list[str]) -> None:
    assert find_urls(text, limit=100) == (urls, False)


def test_egress_through_check_tool_call_reports_each_url_with_its_path(cast, memberships) -> None:
    tool = ToolFactory(tenant=cast.acme, args_schema={}, egress_allowlist=ALLOWLIST)
    arguments = {
        "ok": "https://api.example.com/v1",
        "wild": "see https://eu.example.org/x",
        "nested": {"list": ["x", "http://2130706433/"]},
        "https://evil.com/in-a-key": 1,
        "prose": "then //evil.com/and http://0x7f.1/",
    }
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments=arguments)
    assert not verdict.allowed
    located = {(reason["code"], reason["path"]) for reason in verdict.reasons}
    assert ("egress_ip_literal", "$.nested.list[1]") in located
    assert ("egress_host_not_allowed", "$") in located  # a URL in a key is reported at the object, not the key
    assert ("egress_host_not_allowed", "$.prose") in located
    assert ("egress_ip_literal", "$.prose") in located
    assert not any(reason["path"] in ("$.ok", "$.wild") for reason in verdict.reasons)


def test_an_empty_allowlist_means_no_urls_at_all(cast, memberships) -> None:
    tool = ToolFactory(tenant=cast.acme, args_schema={}, egress_allowlist=[])
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments={"u": "https://api.example.com"})
    assert verdict.codes == ["egress_host_not_allowed"]


def test_legit_urls_pass_through_check_tool_call(cast, memberships) -> None:
    tool = ToolFactory(tenant=cast.acme, args_schema={}, egress_allowlist=ALLOWLIST)
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments={"urls": LEGIT})
    assert verdict.allowed, verdict.reasons


def test_a_flood_of_urls_is_capped_in_the_verdict(cast, memberships) -> None:
    tool = ToolFactory(tenant=cast.acme, args_schema={}, egress_allowlist=[])
    arguments = {"urls": [f"https://host{i}.evil.com/" for i in range(200)]}
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments=arguments)
    assert len(verdict.reasons) == 51
    assert verdict.reasons[-1]["code"] == "egress_problems_more"


def test_a_string_built_to_be_slow_is_refused_quickly(cast, memberships) -> None:
    import time

    tool = ToolFactory(tenant=cast.acme, args_schema={}, egress_allowlist=["*.example.com"], args_cap_bytes=1 << 20)
    blob = "".join(f"http://h{i}.example.com/" for i in range(40_000))  # ~1 MiB, no whitespace, 40,000 URLs
    arguments = {"blob": blob}
    started = time.monotonic()
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments=arguments)
    assert time.monotonic() - started < 5
    assert verdict.codes == ["egress_too_many_urls"]


def test_very_long_urls_are_checked_by_their_host(cast, memberships) -> None:
    tool = ToolFactory(tenant=cast.acme, args_schema={}, egress_allowlist=["api.example.com"])
    long_ok = "https://api.example.com/" + "a" * 20_000
    assert check_tool_call(subject=memberships["member"], tool=tool, arguments={"u": long_ok}).allowed
    long_bad = "https://evil.com/" + "a" * 20_000
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments={"u": long_bad})
    assert verdict.codes == ["egress_host_not_allowed"]


def test_repetitive_strings_cannot_make_the_scan_expensive(cast, memberships) -> None:
    import time

    tool = ToolFactory(tenant=cast.acme, args_schema={}, egress_allowlist=["api.example.com"], args_cap_bytes=1 << 20)
    arguments = {"blob": "http://api.example.com/" * 40_000}  # 40,000 overlapping candidates, one distinct URL
    started = time.monotonic()
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments=arguments)
    assert time.monotonic() - started < 1
    assert verdict.codes == ["egress_too_many_urls"]
