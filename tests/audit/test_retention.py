"""Retention: the one privileged path that deletes a prefix of a chain, recorded and verifiable."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from apps.audit import services
from apps.audit.models import AuditEvent, AuditRetentionCut
from apps.audit.redaction import mask_text
from apps.audit.services import Actor, retention_purge, seal_chains
from apps.audit.verification import verify_chain

NOW = timezone.now()
OLD = NOW - timedelta(days=100)
CUT = NOW - timedelta(days=90)


@pytest.fixture
def mixed_chain(cast, record_at):
    """Acme: seq 1–4 old, seq 5–6 recent."""
    for index in range(4):
        record_at("member.invite", at=OLD + timedelta(minutes=index), tenant=cast.acme, metadata={"n": index})
    for index in range(2):
        record_at("member.invite", at=NOW - timedelta(days=1), tenant=cast.acme, metadata={"n": 4 + index})
    return list(AuditEvent.objects.for_tenant(cast.acme).order_by("seq"))


def test_purge_deletes_the_old_prefix_moves_the_anchor_and_is_recorded(cast, mixed_chain):
    seal_chains()
    result = retention_purge(chain=cast.acme.pk, older_than=CUT, by=cast.owner)
    assert (result.deleted, result.up_to_seq) == (4, 4)
    assert result.anchor_hash == bytes(mixed_chain[3].hash)
    cut = AuditRetentionCut.objects.get(chain=cast.acme.pk)
    assert (cut.up_to_seq, bytes(cut.anchor_hash)) == (4, bytes(mixed_chain[3].hash))
    remaining = list(AuditEvent.objects.for_tenant(cast.acme).order_by("seq").values_list("seq", "action"))
    assert remaining == [(5, "member.invite"), (6, "member.invite"), (7, "audit.retention_purge")]
    purge = AuditEvent.objects.get(pk=result.event_id)
    assert (purge.actor_id, purge.target_type, purge.target_id) == (
        str(cast.owner.pk),
        "audit_chain",
        str(cast.acme.pk),
    )
    assert purge.metadata["deleted"] == 4
    assert purge.metadata["anchor_hash"] == bytes(mixed_chain[3].hash).hex()
    report = verify_chain(cast.acme.pk)
    assert report.ok, report.problem
    assert (report.start_seq, report.checked) == (5, 3)


def test_purge_only_removes_a_prefix(cast, record_at):
    # seq 2 is recent: seq 3, although old, must stay so that the chain has no hole.
    record_at("a.old", at=OLD, tenant=cast.acme)
    record_at("a.new", at=NOW - timedelta(days=1), tenant=cast.acme)
    record_at("a.old_again", at=OLD, tenant=cast.acme)
    result = retention_purge(chain=cast.acme.pk, older_than=CUT, by=Actor.system())
    assert (result.deleted, result.up_to_seq) == (1, 1)
    assert list(AuditEvent.objects.for_tenant(cast.acme).order_by("seq").values_list("action", flat=True)) == [
        "a.new",
        "a.old_again",
        "audit.retention_purge",
    ]
    assert verify_chain(cast.acme.pk).ok


def test_repeated_purges_and_purging_everything_keep_the_chain_verifiable(cast, mixed_chain):
    retention_purge(chain=cast.acme.pk, older_than=CUT, by=Actor.system())
    nothing = retention_purge(chain=cast.acme.pk, older_than=CUT, by=Actor.system())
    assert (nothing.deleted, nothing.up_to_seq) == (0, 4)
    assert verify_chain(cast.acme.pk).ok
    everything = retention_purge(chain=cast.acme.pk, older_than=timezone.now(), by=Actor.system())
    assert everything.deleted == 4  # seq 5–8: two events and two purge records
    assert AuditEvent.objects.for_tenant(cast.acme).count() == 1
    seal_chains()
    assert verify_chain(cast.acme.pk).ok


def test_purge_of_the_platform_chain(cast, record_at):
    record_at("platform.old", at=OLD)
    record_at("platform.new", at=NOW)
    result = retention_purge(chain=0, older_than=CUT, by=Actor.system())
    assert result.deleted == 1
    assert AuditEvent.objects.get(pk=result.event_id).tenant_id is None
    assert verify_chain(0).ok


def test_purge_other_chains_untouched(cast, mixed_chain, record_at):
    record_at("globex.old", at=OLD, tenant=cast.globex)
    retention_purge(chain=cast.acme.pk, older_than=CUT, by=Actor.system())
    assert AuditEvent.objects.for_tenant(cast.globex).filter(action="globex.old").exists()
    assert verify_chain(cast.globex.pk).ok


def test_retention_flag_does_not_outlive_the_purge(cast, mixed_chain):
    with transaction.atomic():
        retention_purge(chain=cast.acme.pk, older_than=CUT, by=Actor.system())
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("DELETE FROM audit_auditevent WHERE chain = %s", [cast.acme.pk])


@pytest.mark.parametrize("older_than", [CUT.replace(tzinfo=None), NOW + timedelta(days=1)])
def test_purge_refuses_naive_or_future_cut(cast, older_than):
    with pytest.raises(ValueError, match="older_than"):
        retention_purge(chain=cast.acme.pk, older_than=older_than, by=Actor.system())


def test_unattested_cut_is_reported_as_deleted(cast, mixed_chain, tamper):
    # Someone deletes the oldest events by hand and forges a retention cut to hide it.
    tamper.sql("DELETE FROM audit_auditevent WHERE chain = %s AND seq <= 2", [cast.acme.pk])
    with tamper.off():
        AuditRetentionCut.objects.create(chain=cast.acme.pk, up_to_seq=2, anchor_hash=bytes(mixed_chain[1].hash))
    problem = verify_chain(cast.acme.pk).problem
    assert problem.kind == "deleted"
    assert "no audit.retention_purge event attests" in problem.detail


def test_purge_command_then_verify_command(cast, mixed_chain):
    out = StringIO()
    call_command("audit_purge", "--tenant", "acme", "--older-than-days", "90", stdout=out, no_color=True)
    assert f"Chain {cast.acme.pk} (acme): deleted 4 event(s)" in out.getvalue()
    verify_out = StringIO()
    call_command("audit_verify", "--tenant", "acme", stdout=verify_out, no_color=True)
    assert "OK    chain" in verify_out.getvalue()
    purge = AuditEvent.objects.for_tenant(cast.acme).get(action="audit.retention_purge")
    assert purge.actor_type == "system"
    assert purge.actor_display.startswith("manage.py audit_purge")


def test_purge_command_arguments(cast):
    with pytest.raises(CommandError):
        call_command("audit_purge", "--older-than-days", "30", stdout=StringIO())
    with pytest.raises(CommandError, match="at least 1"):
        call_command("audit_purge", "--platform", "--older-than-days", "0", stdout=StringIO())
    with pytest.raises(CommandError, match="No tenant"):
        call_command("audit_purge", "--tenant", "nope", "--older-than-days", "30", stdout=StringIO())


def _old_chain_ending_in_a_card_like_hash(record_at, tenant) -> bytes:
    """Old events until the newest one's hash, in hex, holds a Luhn-valid run of 13–19 digits.

    About 1 hash in 230 does: the purge record's anchor_hash then looked like a
    card number to metadata masking, which made the suite flaky.
    """
    for index in range(5000):
        event = AuditEvent.objects.get(pk=record_at("a.old", at=OLD, tenant=tenant, metadata={"n": index}))
        anchor = bytes(event.hash)
        if mask_text(anchor.hex()) != anchor.hex():
            return anchor
    pytest.fail("no card-like hash in 5000 events")


def test_an_anchor_hash_that_looks_like_a_card_number_still_attests_the_cut(cast, record_at):
    anchor = _old_chain_ending_in_a_card_like_hash(record_at, cast.acme)
    result = retention_purge(chain=cast.acme.pk, older_than=CUT, by=Actor.system())
    assert result.anchor_hash == anchor
    purge = AuditEvent.objects.get(pk=result.event_id)
    assert purge.metadata["anchor_hash"] == anchor.hex()  # stored as computed, not masked
    report = verify_chain(cast.acme.pk)
    assert report.ok, report.problem


def test_a_purge_record_masked_by_the_old_code_still_attests_the_cut(cast, record_at, monkeypatch):
    # Chains purged before the fix hold purge records whose anchor was masked.
    anchor = _old_chain_ending_in_a_card_like_hash(record_at, cast.acme)
    real_metadata_json = services._metadata_json
    monkeypatch.setattr(services, "_metadata_json", lambda metadata, *, mask: real_metadata_json(metadata, mask=True))
    result = retention_purge(chain=cast.acme.pk, older_than=CUT, by=Actor.system())
    assert AuditEvent.objects.get(pk=result.event_id).metadata["anchor_hash"] == mask_text(anchor.hex())
    report = verify_chain(cast.acme.pk)
    assert report.ok, report.problem
