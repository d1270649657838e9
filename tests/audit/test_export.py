"""Exports: streamed, filtered like the page, masked, formula-safe, and themselves audited."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta

import pytest

from apps.audit.export import safe_cell
from apps.audit.models import AuditEvent
from apps.audit.services import Actor

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def events(cast, record_at):
    owner = Actor.for_user(cast.owner)
    record_at("member.invite", at=T0, tenant=cast.acme, actor=owner, target_type="membership", target_id="1")
    record_at(
        "member.remove",
        at=T0 + timedelta(hours=1),
        tenant=cast.acme,
        actor=owner,
        result="denied",
        target_type="membership",
        target_id='=HYPERLINK("http://evil")',
        metadata={"api_key": "sk_live_ABCDEFGH12345678", "note": "card 4242 4242 4242 4242", "who": "Zoë"},
    )
    record_at("role.create", at=T0 + timedelta(hours=2), tenant=cast.acme, actor=Actor.anonymous("+cmd|' /C calc'!A0"))
    record_at("member.invite", at=T0, tenant=cast.globex, actor=Actor.for_user(cast.globex_owner))


def content(response) -> str:
    assert response.streaming
    return b"".join(response.streaming_content).decode()


def test_csv_export_streams_the_filtered_rows(cast, client_for, events):
    response = client_for(cast.owner).get("/t/acme/audit/export.csv", {"action": "member."})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"].startswith('attachment; filename="audit-acme-')
    assert response["Content-Disposition"].endswith('.csv"')
    rows = list(csv.DictReader(io.StringIO(content(response))))
    assert [row["action"] for row in rows] == ["member.remove", "member.invite"]  # newest first
    assert {row["tenant_slug"] for row in rows} == {"acme"}
    removed = rows[0]
    assert removed["result"] == "denied"
    assert removed["occurred_at"] == "2025-03-01T13:00:00.000000+00:00"
    metadata = json.loads(removed["metadata"])
    assert metadata == {"api_key": "[MASKED]", "note": "card [PAN ****4242]", "who": "Zoë"}
    assert len(removed["hash"]) == 64


def test_csv_cells_cannot_run_as_formulas(cast, client_for, events):
    text = content(client_for(cast.owner).get("/t/acme/audit/export.csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    by_action = {row["action"]: row for row in rows}
    assert by_action["member.remove"]["target_id"] == '\'=HYPERLINK("http://evil")'
    assert by_action["role.create"]["actor_display"] == "'+cmd|' /C calc'!A0"
    for row in rows:
        for value in row.values():
            assert not value.startswith(("=", "+", "-", "@"))


@pytest.mark.parametrize(
    ("value", "expected"),
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("ok", "ok"), (5, 5)],
)
def test_safe_cell(value, expected):
    assert safe_cell(value) == expected


def test_jsonl_export(cast, client_for, events):
    response = client_for(cast.admin).get("/t/acme/audit/export.jsonl", {"result": "denied"})
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/x-ndjson")
    assert response["Content-Disposition"].endswith('.jsonl"')
    lines = content(response).splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert row["action"] == "member.remove"
    assert row["metadata"]["api_key"] == "[MASKED]"
    assert row["target_id"] == '=HYPERLINK("http://evil")'  # JSON is not a spreadsheet: kept verbatim
    assert row["ip"] is None


def test_export_is_audited_with_its_filters(cast, client_for, events):
    content(client_for(cast.owner).get("/t/acme/audit/export.csv", {"action": "member.", "date_from": "2025-03-01"}))
    event = AuditEvent.objects.for_tenant(cast.acme).get(action="audit.export")
    assert event.actor_id == str(cast.owner.pk)
    assert event.metadata == {
        "format": "csv",
        "filters": {"action": "member.", "occurred_from": "2025-03-01T00:00:00+00:00"},
    }


def test_export_never_contains_other_tenants(cast, client_for, events):
    text = content(client_for(cast.globex_owner).get("/t/globex/audit/export.csv"))
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {row["tenant_slug"] for row in rows} == {"globex"}
    assert "member.remove" not in text


def test_export_with_bad_filters_is_a_400(cast, client_for, events):
    response = client_for(cast.owner).get("/t/acme/audit/export.csv", {"date_from": "soon"})
    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="audit.export").exists()


def test_unknown_export_format_is_404(cast, client_for):
    assert client_for(cast.owner).get("/t/acme/audit/export.xlsx").status_code == 404


def test_large_export_streams_in_chunks(cast, client_for):
    from apps.audit.services import record

    for index in range(450):
        record("bulk.event", tenant=cast.acme, target_type="n", target_id=index)
    response = client_for(cast.owner).get("/t/acme/audit/export.jsonl", {"action": "bulk.event"})
    chunks = list(response.streaming_content)
    assert len(chunks) >= 3  # 200 rows per chunk: not one big string
    assert sum(chunk.count(b"\n") for chunk in chunks) == 450
