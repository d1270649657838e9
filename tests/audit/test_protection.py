"""The database itself guards every audit table (issue #7, item 9), attacked with plain SQL.

Each test plays a session holding the application's database connection: it
may run any statement except DDL on the audit tables (disabling triggers is
for their owner only; see apps.audit.checks).
"""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.audit import chain
from apps.audit.models import AuditChainHead, AuditEvent, AuditRetentionCut, AuditSeal
from apps.audit.services import Actor, record, retention_purge, seal_chains

AUDIT_TABLES = ("audit_auditevent", "audit_auditseal", "audit_auditchainhead", "audit_auditretentioncut")


def _sql(query: str, params: list | tuple = ()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(query, params)


def refused(query: str, params: list | tuple = (), match: str = "refused") -> None:
    # A savepoint keeps the test transaction usable after the refusal.
    with pytest.raises(DatabaseError, match=match), transaction.atomic():
        _sql(query, params)


def _flush_deferred_checks() -> None:
    # TRUNCATE refuses to run while the test's deferred foreign-key checks are pending.
    _sql("SET CONSTRAINTS ALL IMMEDIATE")


@pytest.mark.parametrize("table", AUDIT_TABLES)
def test_truncate_is_refused(cast, chain_of, table):
    chain_of(3)
    seal_chains()
    _flush_deferred_checks()
    refused(f"TRUNCATE {table} CASCADE", match="TRUNCATE refused")
    assert AuditEvent.objects.for_tenant(cast.acme).count() == 3


def test_truncate_of_all_audit_tables_at_once_is_refused(cast, chain_of):
    chain_of(2)
    _flush_deferred_checks()
    refused(f"TRUNCATE {', '.join(AUDIT_TABLES)}", match="TRUNCATE refused")


def test_head_cannot_be_rolled_back_moved_or_deleted(cast, chain_of):
    events = chain_of(3)
    head = AuditChainHead.objects.get(chain=cast.acme.pk)
    # Roll the head back to hide a tail (the classic truncation cover-up).
    refused(
        "UPDATE audit_auditchainhead SET seq = 2, head_hash = %s, prev_hash = %s WHERE chain = %s",
        [bytes(events[1].hash), bytes(events[0].hash), cast.acme.pk],
    )
    # Move it forward to a hash no event holds.
    refused(
        "UPDATE audit_auditchainhead SET seq = 4, head_hash = %s, prev_hash = %s WHERE chain = %s",
        [b"\x42" * 32, bytes(head.head_hash), cast.acme.pk],
    )
    refused("UPDATE audit_auditchainhead SET updated_at = now() - interval '1 day' WHERE chain = %s", [cast.acme.pk])
    refused("DELETE FROM audit_auditchainhead WHERE chain = %s", [cast.acme.pk])
    # A new head for another chain can only start empty.
    refused(
        "INSERT INTO audit_auditchainhead (chain, seq, prev_hash, head_hash, updated_at) VALUES (%s, 5, %s, %s, now())",
        [cast.globex.pk, chain.GENESIS, b"\x42" * 32],
    )
    assert AuditChainHead.objects.get(chain=cast.acme.pk).seq == 3


def test_an_event_must_extend_the_head(cast, chain_of):
    """Planting a row past the head, or one that does not link to it, is refused.

    (A row in the middle already collides with the unique (chain, seq) constraint.)
    """
    events = chain_of(3)
    columns = (
        "chain, seq, occurred_at, tenant_id, actor_type, actor_id, actor_display, action, target_type, target_id, "
        "result, ip, user_agent, request_id, metadata, prev_hash, hash"
    )
    for seq, prev in ((5, bytes(events[-1].hash)), (4, b"\x01" * 32), (4, bytes(events[1].hash))):
        refused(
            f"INSERT INTO audit_auditevent ({columns}) VALUES (%s, %s, now(), %s, 'user', '1', 'x', "
            "'member.role_change', '', '', 'success', NULL, '', '', '{}', %s, %s)",
            [cast.acme.pk, seq, cast.acme.pk, prev, b"\x42" * 32],
            match="does not extend the chain head",
        )
    record("member.invite", tenant=cast.acme)
    assert AuditChainHead.objects.get(chain=cast.acme.pk).seq == 4


def test_retention_cut_cannot_be_forged_or_moved(cast, chain_of):
    events = chain_of(3)
    refused(
        "INSERT INTO audit_auditretentioncut (chain, up_to_seq, anchor_hash, cut_at) VALUES (%s, 2, %s, now())",
        [cast.acme.pk, bytes(events[1].hash)],
    )
    retention_purge(chain=cast.acme.pk, older_than=timezone.now(), by=Actor.system())
    cut = AuditRetentionCut.objects.get(chain=cast.acme.pk)
    refused("UPDATE audit_auditretentioncut SET up_to_seq = 1 WHERE chain = %s", [cast.acme.pk])
    refused("DELETE FROM audit_auditretentioncut WHERE chain = %s", [cast.acme.pk])
    assert AuditRetentionCut.objects.get(chain=cast.acme.pk).up_to_seq == cut.up_to_seq


def test_seal_rows_are_append_only(cast, chain_of):
    chain_of(2)
    (seal,) = seal_chains()
    refused("UPDATE audit_auditseal SET seq = 1 WHERE id = %s", [seal.pk], match="append-only")
    refused("DELETE FROM audit_auditseal WHERE id = %s", [seal.pk], match="append-only")
    assert AuditSeal.objects.filter(pk=seal.pk).exists()


def test_retention_goes_through_the_security_definer_function_only(cast, chain_of):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.prosecdef, pg_get_userbyid(p.proowner) FROM pg_proc p WHERE p.proname = %s",
            ["bastion_audit_retention_purge"],
        )
        (security_definer, _owner) = cursor.fetchone()
    assert security_definer is True
    chain_of(3)
    refused("DELETE FROM audit_auditevent WHERE chain = %s", [cast.acme.pk], match="append-only")
    result = retention_purge(chain=cast.acme.pk, older_than=timezone.now(), by=Actor.system())
    assert result.deleted == 3
    # No pass survives the function: the rest of the transaction cannot delete.
    record("member.invite", tenant=cast.acme)
    refused("DELETE FROM audit_auditevent WHERE chain = %s", [cast.acme.pk], match="append-only")
