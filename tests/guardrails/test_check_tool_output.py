"""check_tool_output: the tool's output cap, in bytes, with denials audited by size only."""

from __future__ import annotations

import pytest

from apps.audit.models import AuditEvent
from apps.guardrails.services import check_tool_output
from tests.catalog.factories import ToolFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def tool(cast):
    return ToolFactory(tenant=cast.acme, output_cap_bytes=10)


@pytest.mark.parametrize("output", [b"", b"0123456789", "0123456789", "ééééé"])
def test_output_within_the_cap_passes(cast, tool, output) -> None:
    assert check_tool_output(tool=tool, output=output).allowed
    assert not AuditEvent.objects.for_tenant(cast.acme).filter(action="guardrail.tool_output").exists()


@pytest.mark.parametrize("output", [b"0123456789A", "0123456789A", "éééééé", "x" * 10_000_000])
def test_output_over_the_cap_is_denied_and_audited_by_size(cast, tool, output) -> None:
    verdict = check_tool_output(tool=tool, output=output)
    assert verdict.codes == ["output_too_large"]
    assert "cap of 10 bytes" in verdict.reasons[0]["message"]
    (event,) = AuditEvent.objects.for_tenant(cast.acme).filter(action="guardrail.tool_output")
    assert event.result == "denied"
    assert event.metadata["output_cap_bytes"] == 10
    assert event.metadata["output_bytes_at_least"] > 10
    assert "0123456789" not in str(event.metadata)
