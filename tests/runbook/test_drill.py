"""The restore drill for real: pg_dump → pg_restore into a scratch database → counts and audit verification.

Runs against the test database itself (small), so every test here commits its
data (``transactional_db``): pg_dump reads through its own connection.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from apps.audit.models import AuditEvent
from apps.audit.services import record
from apps.runbook import drill as drill_module
from apps.runbook.drill import DrillError, drill_request, drill_run, find_pg_tools
from apps.runbook.models import DrillResult, RunbookItem
from tests.runbook.conftest import drill_databases, drop_database

pytestmark = pytest.mark.usefixtures("no_leftover_scratch")


@pytest.fixture
def history(transactional_db, cast):
    """Some audit history in two tenant chains and the platform chain (committed)."""
    for index in range(5):
        record("member.invite", tenant=cast.acme, metadata={"n": index})
    record("member.invite", tenant=cast.globex)
    record("system.heartbeat")
    return cast


def test_a_drill_restores_everything_and_passes(history, open_at):
    runbook = open_at(history.acme)
    drill = drill_run(drill_request(via="test").pk)
    assert drill is not None
    assert drill.status == DrillResult.Status.PASSED, drill.error
    assert drill.error == ""
    assert drill.mismatches == []
    assert drill.chain_problems == []
    # Every table was counted in both places; the audit rows are there to be compared.
    assert drill.tables > 30
    assert drill.counts["public.audit_auditevent"][0] == drill.counts["public.audit_auditevent"][1] >= 7
    assert drill.counts["public.tenants_tenant"] == [2, 2]
    assert drill.chains_verified >= 3  # platform, acme, globex
    assert drill.events_verified >= 7
    assert drill.duration_ms > 0
    assert drill.finished_at is not None
    assert [step["step"] for step in drill.steps] == [
        "dump",
        "count source",
        "create scratch",
        "restore",
        "count restored",
        "verify audit chains",
        "drop scratch",
    ]
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        major = int(cursor.fetchone()[0]) // 10000
    assert f"(PostgreSQL) {major}" in drill.tool_version
    assert drill.scratch_database not in drill_databases()
    # Evidence: recorded on the platform chain, linked from the open runbook's drill line.
    event = AuditEvent.objects.filter(action="runbook.drill_finished", target_id=str(drill.pk)).get()
    assert (event.tenant_id, event.result, event.metadata["status"]) == (None, "success", "passed")
    line = RunbookItem.objects.for_tenant(history.acme).get(runbook=runbook, kind="drill")
    assert line.drill_id == drill.pk


def test_a_corrupted_audit_chain_fails_the_drill_and_the_scratch_is_still_dropped(history):
    # The owner of the tables (the one attacker the triggers cannot stop) edits an event in place.
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute(
            "UPDATE audit_auditevent SET metadata = '{\"n\": 99}'::jsonb WHERE chain = %s AND seq = 2",
            [history.acme.pk],
        )
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    drill = drill_run(drill_request(via="test").pk)
    assert drill.status == DrillResult.Status.FAILED
    assert "audit chain(s) do not verify" in drill.error
    [problem] = drill.chain_problems
    assert (problem["chain"], problem["kind"], problem["seq"]) == (history.acme.pk, "edited", 2)
    assert drill.mismatches == []  # the copy is faithful: the damage was in the source
    assert drill.scratch_database not in drill_databases()
    assert AuditEvent.objects.filter(action="runbook.drill_finished", result="failure").count() == 1


def test_a_scratch_name_collision_fails_and_leaves_the_other_database_alone(history):
    queued = drill_request(via="test")
    with connection.cursor() as cursor:  # someone else's database happens to carry the name
        cursor.execute(f'CREATE DATABASE "{queued.scratch_database}"')
    try:
        drill = drill_run(queued.pk)
        assert drill.status == DrillResult.Status.FAILED
        assert "already exists" in drill.error
        assert drill.scratch_database in drill_databases()  # not ours: not dropped
        assert [step["step"] for step in drill.steps] == ["dump", "count source", "create scratch"]
    finally:
        drop_database(queued.scratch_database)


def test_missing_binaries_fail_with_a_clear_reason(history, settings, monkeypatch, tmp_path):
    monkeypatch.setattr(drill_module, "_candidate_dirs", lambda major: iter([tmp_path]))
    drill = drill_run(drill_request(via="test").pk)
    assert drill.status == DrillResult.Status.FAILED
    assert "no pg_dump/pg_restore for PostgreSQL" in drill.error
    assert "RESTORE_DRILL_PG_BIN_DIR" in drill.error


def test_only_one_drill_at_a_time_and_a_claimed_drill_runs_once(history):
    queued = drill_request(via="test")
    with pytest.raises(DrillError, match="already queued"):
        drill_request(via="test")
    DrillResult.objects.filter(pk=queued.pk).update(status=DrillResult.Status.RUNNING)
    assert drill_run(queued.pk) is None  # someone else holds it


def test_a_drill_stuck_past_the_time_limit_is_failed_by_the_next_request(history, settings):
    settings.RESTORE_DRILL_TIMEOUT_SECONDS = 60
    stuck = drill_request(via="test")
    DrillResult.objects.filter(pk=stuck.pk).update(
        status=DrillResult.Status.RUNNING, requested_at=stuck.requested_at.replace(year=2000)
    )
    fresh = drill_request(via="test")
    stuck.refresh_from_db()
    assert stuck.status == DrillResult.Status.FAILED
    assert "did not finish" in stuck.error
    DrillResult.objects.filter(pk=fresh.pk).delete()


def test_the_pg_tools_match_the_server_version(history):
    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version_num")
        major = int(cursor.fetchone()[0]) // 10000
    tools = find_pg_tools(major)
    assert tools.major == major
    with pytest.raises(DrillError, match="PostgreSQL 3 found"):
        find_pg_tools(3)


def test_the_command_prints_the_evidence_and_exits_non_zero_on_failure(history):
    out = StringIO()
    call_command("restore_drill", "--json", stdout=out)
    document = json.loads(out.getvalue())
    assert document["status"] == "passed"
    assert document["mismatches"] == []
    assert document["chain_problems"] == []
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
        cursor.execute("DELETE FROM audit_auditevent WHERE chain = %s AND seq = 3", [history.acme.pk])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")
    out = StringIO()
    with pytest.raises(CommandError) as failed:
        call_command("restore_drill", stdout=out)
    assert failed.value.returncode == 2
    assert "FAILED" in out.getvalue()
