"""apps.sso.dns against a real DNS server on loopback: what counts as the token and what never does."""

from __future__ import annotations

import time

from apps.sso.dns import MAX_RECORD_BYTES, LookupStatus, ResolverConfig, has_token, txt_lookup
from tests.sso.dns_server import LocalDNS

TOKEN = "0123456789abcdef0123456789abcdef"


def _config(server: LocalDNS, timeout: float = 1.0) -> ResolverConfig:
    return ResolverConfig(nameserver="127.0.0.1", port=server.port, timeout=timeout)


def test_exact_record_is_found(local_dns: LocalDNS) -> None:
    local_dns.txt("acme.test", "v=spf1 -all", f"bastion-verify={TOKEN}")
    lookup = txt_lookup("acme.test", config=_config(local_dns))
    assert lookup.status == LookupStatus.FOUND
    assert has_token(lookup, TOKEN)
    assert local_dns.queries == ["acme.test."]  # the exact, absolute name only


def test_split_quoted_and_upper_case_records_count(local_dns: LocalDNS) -> None:
    local_dns.txt("split.test", ("bastion-verify=", TOKEN[:10], TOKEN[10:]))
    local_dns.txt("quoted.test", f'"bastion-verify={TOKEN}"')
    local_dns.txt("upper.test", f"  BASTION-VERIFY={TOKEN.upper()} ")
    for name in ("split.test", "quoted.test", "upper.test"):
        assert has_token(txt_lookup(name, config=_config(local_dns)), TOKEN), name


def test_token_inside_a_longer_value_does_not_count(local_dns: LocalDNS) -> None:
    local_dns.txt(
        "acme.test",
        f"xbastion-verify={TOKEN}",
        f"bastion-verify={TOKEN}x",
        f"bastion-verify={TOKEN} bastion-verify=other",
        f"google-site-verification=bastion-verify={TOKEN}",
        TOKEN,
        f"bastion-verify={TOKEN[:-1]}",
    )
    assert not has_token(txt_lookup("acme.test", config=_config(local_dns)), TOKEN)


def test_empty_token_never_matches(local_dns: LocalDNS) -> None:
    local_dns.txt("acme.test", "bastion-verify=")
    assert not has_token(txt_lookup("acme.test", config=_config(local_dns)), "")


def test_sub_domain_and_parent_records_do_not_count(local_dns: LocalDNS) -> None:
    local_dns.txt("evil.acme.test", f"bastion-verify={TOKEN}")
    local_dns.txt("test", f"bastion-verify={TOKEN}")
    local_dns.exists("acme.test")
    lookup = txt_lookup("acme.test", config=_config(local_dns))
    assert lookup.status == LookupStatus.NO_RECORDS
    assert not has_token(lookup, TOKEN)


def test_nxdomain_servfail_and_timeout_are_statuses(local_dns: LocalDNS) -> None:
    local_dns.servfail("broken.test")
    local_dns.silent("slow.test")
    assert txt_lookup("missing.test", config=_config(local_dns)).status == LookupStatus.NXDOMAIN
    assert txt_lookup("broken.test", config=_config(local_dns)).status == LookupStatus.FAILED
    started = time.monotonic()
    assert txt_lookup("slow.test", config=_config(local_dns, timeout=0.5)).status == LookupStatus.TIMEOUT
    assert time.monotonic() - started < 3  # the timeout bounds the whole lookup


def test_oversized_and_binary_values_are_skipped(local_dns: LocalDNS) -> None:
    big = "a" * 250
    local_dns.txt("big.test", tuple([big] * ((MAX_RECORD_BYTES // 250) + 1)))
    local_dns.raw_txt("big.test", b"bastion-verify=\xff" + TOKEN.encode())
    lookup = txt_lookup("big.test", config=_config(local_dns))
    assert lookup.status == LookupStatus.FOUND
    assert lookup.values == ()


def test_nothing_listening_is_not_verified() -> None:
    lookup = txt_lookup("acme.test", config=ResolverConfig(nameserver="127.0.0.1", port=9, timeout=0.5))
    assert lookup.status in {LookupStatus.TIMEOUT, LookupStatus.FAILED}
    assert not has_token(lookup, TOKEN)
