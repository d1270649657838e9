"""record(): context capture, chain links, and payloads that survive the database round trip."""

from __future__ import annotations

import ipaddress

import pytest
from django.db import transaction

from apps.audit import chain
from apps.audit.models import PLATFORM_CHAIN, AuditChainHead, AuditEvent
from apps.audit.services import Actor, record
from apps.audit.verification import verify_chain
from apps.core import context


def test_record_writes_request_context_and_actor(cast):
    with context.bind(
        request_id="req-12345678",
        ip="203.0.113.7",
        user_agent="Mozilla/5.0 (test)",
        user_id=cast.admin.pk,
        user_display=cast.admin.email,
    ):
        event_id = record("member.role_change", tenant=cast.acme, target=cast.acme, metadata={"role": "admin"})
    event = AuditEvent.objects.get(pk=event_id)
    assert event.ip == "203.0.113.7"
    assert event.user_agent == "Mozilla/5.0 (test)"
    assert event.request_id == "req-12345678"
    assert (event.actor_type, event.actor_id, event.actor_display) == ("user", str(cast.admin.pk), cast.admin.email)
    assert (event.target_type, event.target_id) == ("tenant", str(cast.acme.pk))
    assert (event.chain, event.seq, event.tenant_id) == (cast.acme.pk, 1, cast.acme.pk)
    assert event.prev_hash == chain.GENESIS


def test_chains_are_per_tenant_and_link_in_seq_order(cast):
    first = record("a.one", tenant=cast.acme)
    record("b.one", tenant=cast.globex)
    second = record("a.two", tenant=cast.acme)
    platform = record("platform.thing")
    a1, a2 = AuditEvent.objects.get(pk=first), AuditEvent.objects.get(pk=second)
    assert (a1.seq, a2.seq) == (1, 2)
    assert bytes(a2.prev_hash) == bytes(a1.hash)
    assert AuditEvent.objects.get(pk=platform).chain == PLATFORM_CHAIN
    head = AuditChainHead.objects.get(chain=cast.acme.pk)
    assert (head.seq, bytes(head.head_hash)) == (2, bytes(a2.hash))


def test_unknown_result_is_refused(cast):
    with pytest.raises(ValueError, match="unknown audit result"):
        record("x.y", tenant=cast.acme, result="maybe")


ROUND_TRIP_CASES = [
    pytest.param("198.51.100.23", {"plain": "ascii"}, "Ana", id="ipv4"),
    pytest.param("2001:db8::1", {"k": "v"}, "Bob", id="ipv6"),
    pytest.param("::ffff:192.0.2.1", {}, "Mapped", id="ipv4-mapped-ipv6"),
    pytest.param("fe80::1%eth0", {}, "Zone", id="ipv6-zone-id"),
    pytest.param("not an ip", {}, "Bad ip", id="invalid-ip"),
    pytest.param(
        None,
        {"name": "Zoë Ünïcödé 日本語 🚀", "combining": "é", "rtl": "שלום", "esc": 'quote " backslash \\ tab \t'},
        "Łukasz 🚀",
        id="unicode",
    ),
    pytest.param(
        "10.1.2.3",
        {
            "before": {"roles": ["viewer", {"scoped": True, "ids": [1, 2, 3]}], "limits": {"daily": 10.5}},
            "after": {"roles": [], "limits": {"daily": None}},
            "floats": [0.1, 1.0, -0.0, 1e100, 2.5e-8, 123456.789],
            "ints": [0, -1, 2**53 + 1, 10**20],
            "bools": [True, False, None],
            "nul": "a\x00b",
            "unordered": {"z": 1, "a": 2, "m": {"y": 1, "b": 2}},
        },
        "Nested",
        id="nested-metadata",
    ),
]


@pytest.mark.parametrize(("ip", "metadata", "display"), ROUND_TRIP_CASES)
def test_payload_round_trip_matches_the_stored_link(cast, ip, metadata, display):
    with context.bind(ip=ip, user_agent="UA ☃", request_id="rid"):
        event_id = record("x.round_trip", tenant=cast.acme, actor=Actor.anonymous(display), metadata=metadata)
    # As a model instance (ip comes back as text) ...
    event = AuditEvent.objects.get(pk=event_id)
    assert chain.link(bytes(event.prev_hash), chain.payload_of(event)) == bytes(event.hash)
    # ... with ip as an ipaddress object, as some drivers return it ...
    if event.ip:
        event.ip = ipaddress.ip_address(event.ip)
        assert chain.link(bytes(event.prev_hash), chain.payload_of(event)) == bytes(event.hash)
    # ... and through the verifier's streaming read.
    assert verify_chain(cast.acme.pk).ok


def test_ip_normalisation():
    assert chain.normalize_ip(ipaddress.ip_address("192.0.2.1")) == "192.0.2.1"
    assert chain.normalize_ip("2001:DB8:0:0::1") == "2001:db8::1"
    assert chain.normalize_ip("fe80::1%eth0") == "fe80::1"
    assert chain.normalize_ip("") is None
    assert chain.normalize_ip("999.1.1.1") is None


def test_oversized_metadata_is_replaced_by_a_marker(cast):
    event_id = record("x.big", tenant=cast.acme, metadata={"blob": "x" * 20_000})
    event = AuditEvent.objects.get(pk=event_id)
    assert event.metadata["truncated"] is True
    assert verify_chain(cast.acme.pk).ok


def test_record_rolls_back_with_the_callers_transaction(cast):
    def change_that_fails() -> None:
        with transaction.atomic():
            record("x.lost", tenant=cast.acme)
            raise RuntimeError("the change failed")

    with pytest.raises(RuntimeError, match="the change failed"):
        change_that_fails()
    assert not AuditEvent.objects.filter(action="x.lost").exists()
    assert not AuditChainHead.objects.filter(chain=cast.acme.pk).exists()
