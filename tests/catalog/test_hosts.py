"""Host normalisation shared by allowlists and egress checks: canonical forms, refusals, matching."""

from __future__ import annotations

import pytest

from apps.catalog.hosts import Host, HostError, canonical_host, host_allowed, normalise_allowlist_entry


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("api.example.com", "api.example.com"),
        ("  API.Example.COM  ", "api.example.com"),
        ("api.example.com.", "api.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("ａｐｉ.example.com", "api.example.com"),
        ("*.example.com", "*.example.com"),
        ("*.Bücher.example", "*.xn--bcher-kva.example"),
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:DB8:0::1]", "2001:db8::1"),
        ("search-svc", "search-svc"),
        ("api.example.com:8443", "api.example.com:8443"),
        ("API.example.com:0443", "api.example.com:443"),
        ("*.example.com:8080", "*.example.com:8080"),
        ("203.0.113.7:8443", "203.0.113.7:8443"),
        ("[2001:DB8::1]:8443", "[2001:db8::1]:8443"),
    ],
)
def test_allowlist_entries_are_canonical(raw: str, expected: str) -> None:
    assert normalise_allowlist_entry(raw) == expected


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        ("https://api.example.com", "scheme"),
        ("//api.example.com", "scheme"),
        ("api.example.com/v1", "path"),
        ("api.example.com?x=1", "path"),
        ("user@api.example.com", "user name"),
        ("api.example.com:0", "port"),
        ("api.example.com:65536", "port"),
        ("api.example.com:https", "port"),
        ("api.example.com:", "port"),
        ("[2001:db8::1]8443", "after its IPv6"),
        ("2001:db8::1:8443:x", "IPv6"),
        ("*.com", "two labels"),
        ("a.*.example.com", "wildcard"),
        ("*", "wildcard"),
        ("2130706433", "IP address"),
        ("0x7f.1", "IP address"),
        ("127.1", "IP address"),
        ("0177.0.0.1", "IP address"),
        ("under_score.example.com", "letters, digits"),
        ("-lead.example.com", "letters, digits"),
        ("a..b", "valid international domain name"),
        ("straße.example", "ß"),
        ("x" * 64 + ".example.com", "valid international domain name"),
        ("api.example.com%00", "%"),
        ("api example.com", "spaces"),
        ("fe80::1%eth0", "%"),
    ],
)
def test_allowlist_entries_refuse_anything_but_a_host(raw: str, complaint: str) -> None:
    with pytest.raises(HostError, match=complaint):
        normalise_allowlist_entry(raw)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("１２７.０.０.１", "127.0.0.1"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
    ],
)
def test_every_ipv4_spelling_is_an_ip(raw: str, value: str) -> None:
    assert canonical_host(raw) == Host("ip", value)


@pytest.mark.parametrize("raw", ["1.2.3.4.5", "256.1.1.1", "0x100.0.0.1", "08.0.0.1", "example.123"])
def test_a_host_that_ends_in_a_number_must_be_a_valid_ipv4(raw: str) -> None:
    with pytest.raises(HostError):
        canonical_host(raw)


def test_a_last_label_that_only_looks_hex_is_a_name() -> None:
    assert canonical_host("foo.0x7g") == Host("dns", "foo.0x7g")


def test_matching_is_by_label_never_by_substring() -> None:
    allowlist = ["api.example.com", "*.example.org", "203.0.113.7"]
    assert host_allowed(Host("dns", "api.example.com"), allowlist)
    assert host_allowed(Host("dns", "a.b.example.org"), allowlist)
    assert not host_allowed(Host("dns", "example.org"), allowlist)  # the wildcard is for sub-domains only
    assert not host_allowed(Host("dns", "api.example.com.evil.com"), allowlist)
    assert not host_allowed(Host("dns", "evilapi.example.com"), allowlist)
    assert not host_allowed(Host("dns", "badexample.org"), allowlist)
    assert host_allowed(Host("ip", "203.0.113.7"), allowlist)
    assert not host_allowed(Host("ip", "203.0.113.8"), allowlist)
    assert not host_allowed(Host("dns", "203.0.113.7.example.net"), allowlist)
