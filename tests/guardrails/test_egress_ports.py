"""Egress ports from the attacker's side: an allowlisted host is not an open door to every port on it.

``api.example.com`` on the allowlist means https://api.example.com/ (443) and
http://api.example.com/ (80) — not its Redis on 6379, its SSH on 22 or an admin
console on 8443. Other ports must be listed as ``host:port``.
"""

from __future__ import annotations

import pytest

from apps.catalog.services import tool_create
from apps.guardrails.egress import check_url
from apps.guardrails.services import check_tool_call

pytestmark = pytest.mark.django_db

ALLOWLIST = ["api.example.com", "*.example.org", "203.0.113.7", "2001:db8::1", "svc.example.net:8443"]


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com:6379/",
        "http://api.example.com:22/",
        "https://api.example.com:80/",  # 80 is http's port, not https's
        "http://api.example.com:443/",  # and 443 is not http's
        "https://eu.example.org:9200/_search",
        "http://203.0.113.7:2375/containers/json",
        "http://[2001:db8::1]:8500/v1/kv",
        "https://svc.example.net/",  # listed with :8443 only
        "https://svc.example.net:8444/",
        "//api.example.com:6379/",
    ],
)
def test_other_ports_of_an_allowlisted_host_are_denied(url: str) -> None:
    assert "egress_port_not_allowed" in [problem.code for problem in check_url(url, ALLOWLIST)]


@pytest.mark.parametrize(
    "url",
    [
        "https://api.example.com/",
        "https://api.example.com:443/",
        "http://api.example.com/",
        "http://api.example.com:80/",
        "https://api.example.com:/",  # an empty port is the default port
        "https://a.eu.example.org/",
        "https://203.0.113.7/",
        "http://[2001:db8::1]/",
        "https://svc.example.net:8443/",
        "http://svc.example.net:8443/",
        "//api.example.com/x",
    ],
)
def test_standard_ports_and_listed_ports_pass(url: str) -> None:
    assert check_url(url, ALLOWLIST) == []


def test_parsers_that_disagree_on_the_port_are_refused() -> None:
    # urllib reads 0443 as 443 like WHATWG; a port both cannot read is malformed, never guessed.
    assert check_url("https://api.example.com:0443/", ALLOWLIST) == []
    assert "egress_malformed_url" in [p.code for p in check_url("https://api.example.com:44３/", ALLOWLIST)]


def test_a_tool_saved_with_a_plain_host_refuses_a_call_to_its_redis_port(cast, memberships) -> None:
    tool = tool_create(
        tenant=cast.acme,
        name="fetcher",
        args_schema={"type": "object"},
        egress_allowlist=["api.example.com"],
        allowlisted=True,
        actor=cast.owner,
    )

    denied = check_tool_call(
        subject=memberships["owner"], tool=tool, arguments={"url": "https://api.example.com:6379/"}
    )
    allowed = check_tool_call(subject=memberships["owner"], tool=tool, arguments={"url": "https://api.example.com/"})

    assert denied.codes == ["egress_port_not_allowed"]
    assert allowed.allowed


def test_a_tool_may_list_a_port_explicitly(cast, memberships) -> None:
    tool = tool_create(
        tenant=cast.acme,
        name="fetcher",
        args_schema={"type": "object"},
        egress_allowlist=["API.example.com:06379"],
        allowlisted=True,
        actor=cast.owner,
    )

    assert tool.egress_allowlist == ["api.example.com:6379"]
    assert check_tool_call(
        subject=memberships["owner"], tool=tool, arguments={"url": "https://api.example.com:6379/"}
    ).allowed
    assert check_tool_call(
        subject=memberships["owner"], tool=tool, arguments={"url": "https://api.example.com/"}
    ).codes == ["egress_port_not_allowed"]
