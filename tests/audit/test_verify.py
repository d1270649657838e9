"""Tamper detection: audit_verify names the first edited, inserted, deleted or truncated event."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from apps.audit import chain
from apps.audit.models import AuditChainHead, AuditSeal
from apps.audit.services import record, seal_chains
from apps.audit.verification import verify_chain


def run_verify(*args: str) -> tuple[str, int]:
    out = StringIO()
    try:
        call_command("audit_verify", *args, stdout=out, no_color=True)
    except CommandError as exc:
        return out.getvalue(), exc.returncode
    return out.getvalue(), 0


def test_intact_chains_verify(cast, chain_of):
    chain_of(5)
    chain_of(3, tenant=cast.globex)
    record("platform.tenant_create", metadata={"slug": "acme"})
    seal_chains()
    report = verify_chain(cast.acme.pk)
    assert report.ok
    assert (report.checked, report.last_seq, report.head_seq, report.sealed_seq) == (5, 5, 5, 5)
    out, code = run_verify()
    assert code == 0
    assert "OK    chain 0 (platform): 1 event(s) verified" in out
    assert f"OK    chain {cast.acme.pk} (acme): 5 event(s) verified (seq 1–5), head at seq 5" in out
    assert "0 with problems" in out


def test_empty_chain_verifies(cast):
    report = verify_chain(cast.acme.pk)
    assert report.ok
    assert report.checked == 0


def test_edited_row_is_named(cast, chain_of, tamper):
    events = chain_of(5)
    victim = events[2]
    tamper.sql('UPDATE audit_auditevent SET metadata = \'{"role": "owner"}\' WHERE id = %s', [victim.pk])
    problem = verify_chain(cast.acme.pk).problem
    assert (problem.kind, problem.event_id, problem.seq) == ("edited", victim.pk, 3)
    assert "next event links to the stored hash" in problem.detail
    out, code = run_verify("--tenant", "acme")
    assert code == 2
    assert f"FAIL  chain {cast.acme.pk} (acme): edited at seq 3 (event id {victim.pk})" in out


def test_edited_last_row_is_named(cast, chain_of, tamper):
    events = chain_of(3)
    tamper.sql("UPDATE audit_auditevent SET result = 'denied' WHERE id = %s", [events[-1].pk])
    problem = verify_chain(cast.acme.pk).problem
    assert (problem.kind, problem.event_id, problem.seq) == ("edited", events[-1].pk, 3)


def test_edited_ip_and_actor_are_detected(cast, chain_of, tamper):
    events = chain_of(4)
    tamper.sql("UPDATE audit_auditevent SET ip = '198.51.100.99' WHERE id = %s", [events[1].pk])
    assert verify_chain(cast.acme.pk).problem.event_id == events[1].pk


def test_deleted_row_is_named(cast, chain_of, tamper):
    events = chain_of(5)
    tamper.sql("DELETE FROM audit_auditevent WHERE id = %s", [events[2].pk])
    problem = verify_chain(cast.acme.pk).problem
    # The missing row's id is gone with it: the report names the row after the gap.
    assert (problem.kind, problem.event_id, problem.seq) == ("deleted", events[3].pk, 4)
    assert "seq 3 is missing" in problem.detail


def test_deleted_first_row_is_detected(cast, chain_of, tamper):
    events = chain_of(3)
    tamper.sql("DELETE FROM audit_auditevent WHERE id = %s", [events[0].pk])
    problem = verify_chain(cast.acme.pk).problem
    assert (problem.kind, problem.event_id) == ("deleted", events[1].pk)


def test_deleted_tail_is_detected_against_the_head(cast, chain_of, tamper):
    events = chain_of(5)
    tamper.sql("DELETE FROM audit_auditevent WHERE id IN (%s, %s)", [events[3].pk, events[4].pk])
    problem = verify_chain(cast.acme.pk).problem
    assert (problem.kind, problem.event_id, problem.seq) == ("truncated", events[2].pk, 3)
    assert "chain head is at seq 5" in problem.detail


def test_tail_truncation_with_rolled_back_head_is_detected_by_the_seal(cast, chain_of, tamper):
    events = chain_of(5)
    seal_chains()
    tamper.sql("DELETE FROM audit_auditevent WHERE id = %s", [events[4].pk])
    with tamper.off():
        AuditChainHead.objects.filter(chain=cast.acme.pk).update(
            seq=4, head_hash=bytes(events[3].hash), prev_hash=bytes(events[2].hash)
        )
    problem = verify_chain(cast.acme.pk).problem
    assert (problem.kind, problem.event_id, problem.seq) == ("truncated", events[3].pk, 4)
    assert "covers up to seq 5" in problem.detail
    # And the sealer refuses to bless the shortened chain with a new seal.
    assert seal_chains() == []


def test_forged_seal_is_detected(cast, chain_of):
    events = chain_of(3)
    AuditSeal.objects.create(chain=cast.acme.pk, seq=3, head_hash=bytes(events[-1].hash), mac=b"\x00" * 32)
    assert verify_chain(cast.acme.pk).problem.kind == "seal_invalid"


def test_seal_naming_another_hash_is_detected(cast, chain_of):
    chain_of(3)
    other = b"\x01" * 32
    AuditSeal.objects.create(chain=cast.acme.pk, seq=2, head_hash=other, mac=chain.seal_mac(cast.acme.pk, 2, other))
    assert verify_chain(cast.acme.pk).problem.kind == "seal_mismatch"


def test_missing_head_row_is_detected(cast, chain_of, tamper):
    chain_of(2)
    with tamper.off():
        AuditChainHead.objects.filter(chain=cast.acme.pk).delete()
    assert verify_chain(cast.acme.pk).problem.kind == "head_missing"


def _forged_row(events, *, seq, prev_hash):
    template = events[-1]
    return {
        "chain": template.chain,
        "seq": seq,
        "occurred_at": template.occurred_at,
        "tenant_id": template.tenant_id,
        "actor_type": "user",
        "actor_id": template.actor_id,
        "actor_display": template.actor_display,
        "action": "member.role_change",
        "target_type": "membership",
        "target_id": "999",
        "result": "success",
        "ip": None,
        "user_agent": "",
        "request_id": "",
        "metadata": '{"role": "owner"}',
        "prev_hash": prev_hash,
        "hash": b"\x42" * 32,  # without the key nobody can compute the real link
    }


def test_row_inserted_beyond_the_head_is_named(cast, chain_of, tamper):
    events = chain_of(3)
    forged = tamper.insert_event(**_forged_row(events, seq=4, prev_hash=bytes(events[-1].hash)))
    problem = verify_chain(cast.acme.pk).problem
    assert (problem.kind, problem.event_id, problem.seq) == ("inserted", forged, 4)
    assert "beyond the chain head" in problem.detail


def test_row_inserted_in_the_middle_is_named(cast, chain_of, tamper):
    events = chain_of(5)
    # Make room at seq 3 (two steps, so the unique (chain, seq) constraint holds throughout).
    tamper.sql("UPDATE audit_auditevent SET seq = -seq WHERE chain = %s AND seq >= 3", [cast.acme.pk])
    tamper.sql("UPDATE audit_auditevent SET seq = 1 - seq WHERE chain = %s AND seq < 0", [cast.acme.pk])
    with tamper.off():
        AuditChainHead.objects.filter(chain=cast.acme.pk).update(seq=6)
    forged = tamper.insert_event(**_forged_row(events, seq=3, prev_hash=bytes(events[1].hash)))
    problem = verify_chain(cast.acme.pk).problem
    assert (problem.kind, problem.event_id, problem.seq) == ("inserted", forged, 3)
    out, code = run_verify("--tenant", "acme")
    assert code == 2
    assert f"inserted at seq 3 (event id {forged})" in out


def test_json_output_and_exit_code(cast, chain_of, tamper):
    events = chain_of(3)
    chain_of(2, tenant=cast.globex)
    tamper.sql("UPDATE audit_auditevent SET action = 'x.rewritten' WHERE id = %s", [events[0].pk])
    out, code = run_verify("--json")
    assert code == 2
    document = json.loads(out)
    assert document["ok"] is False
    by_chain = {item["chain"]: item for item in document["chains"]}
    assert by_chain[cast.globex.pk]["ok"] is True
    acme = by_chain[cast.acme.pk]
    assert acme["name"] == "acme"
    assert acme["problem"] == {
        "kind": "edited",
        "seq": 1,
        "event_id": events[0].pk,
        "detail": "stored hash does not match the event's content; the next event links to the stored hash",
    }


def test_platform_and_tenant_selection(cast, chain_of):
    chain_of(1)
    record("platform.thing")
    out, code = run_verify("--platform")
    assert code == 0
    assert "chain 0 (platform)" in out
    assert "(acme)" not in out
    with pytest.raises(CommandError, match="No tenant"):
        call_command("audit_verify", "--tenant", "nope", stdout=StringIO())


def _created(tenant) -> None:
    # What apps.tenants.services.tenant_create records: one event on each chain.
    record("tenant.create", tenant=tenant, target=tenant, metadata={"slug": tenant.slug})
    record("tenant.create", tenant=None, target=tenant, metadata={"slug": tenant.slug})


def test_an_emptied_tenant_chain_is_reported(cast, chain_of, tamper):
    """The table owner wipes a tenant's chain entirely (events, head, seals): verify must not call it clean."""
    _created(cast.acme)
    chain_of(3)
    seal_chains()
    for table in ("audit_auditevent", "audit_auditchainhead", "audit_auditseal"):
        tamper.sql(f"DELETE FROM {table} WHERE chain = %s", [cast.acme.pk])
    report = verify_chain(cast.acme.pk)
    assert report.problem is not None
    assert report.problem.kind == "emptied"
    out, code = run_verify("--tenant", "acme")
    assert code == 2
    assert "emptied" in out


def test_an_emptied_platform_chain_is_reported(cast, tamper):
    _created(cast.acme)
    for table in ("audit_auditevent", "audit_auditchainhead"):
        tamper.sql(f"DELETE FROM {table} WHERE chain = 0")
    assert verify_chain(0).problem.kind == "emptied"


def test_a_new_tenant_without_history_still_verifies(cast):
    _created(cast.globex)
    assert verify_chain(cast.acme.pk).ok
