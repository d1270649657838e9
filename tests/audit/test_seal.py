"""Seals: written for chains whose head moved, verifiable, and produced by the periodic task."""

from __future__ import annotations

from apps.audit import chain
from apps.audit.models import AuditSeal
from apps.audit.services import record, seal_chains
from apps.audit.tasks import seal_audit_chains


def test_seal_chains_seals_only_moved_heads(cast):
    record("a.one", tenant=cast.acme)
    record("g.one", tenant=cast.globex)
    first = seal_chains()
    assert sorted(seal.chain for seal in first) == sorted([cast.acme.pk, cast.globex.pk])
    assert seal_chains() == []
    record("a.two", tenant=cast.acme)
    (seal,) = seal_chains()
    assert (seal.chain, seal.seq) == (cast.acme.pk, 2)
    assert bytes(seal.mac) == chain.seal_mac(seal.chain, seal.seq, bytes(seal.head_hash))


def test_task_is_a_thin_wrapper_with_the_scheduled_name(cast):
    assert seal_audit_chains.name == "apps.audit.tasks.seal_audit_chains"
    assert seal_audit_chains.acks_late is True
    assert (seal_audit_chains.soft_time_limit, seal_audit_chains.time_limit) == (120, 180)
    record("a.one", tenant=cast.acme)
    assert seal_audit_chains.apply().get() == 1
    assert AuditSeal.objects.filter(chain=cast.acme.pk).count() == 1
    assert seal_audit_chains.apply().get() == 0
