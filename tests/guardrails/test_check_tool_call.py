"""check_tool_call: every reason collected, data lineage, tenant isolation, schema, size, audit."""

from __future__ import annotations

import json

import pytest

from apps.access.services import grant_assign
from apps.audit.models import AuditEvent
from apps.guardrails.services import DEFAULT_MAX_ARGUMENT_BYTES, check_tool_call
from apps.tenants.models import Membership
from tests.catalog.factories import DatasetFactory, ToolFactory

pytestmark = pytest.mark.django_db

GOOD = {"query": {"text": "cats", "limit": 5}, "url": "https://api.example.com/search"}


def _denials(tenant) -> list[AuditEvent]:
    return list(AuditEvent.objects.for_tenant(tenant).filter(action="guardrail.tool_call").order_by("seq"))


def test_a_member_may_call_an_allowlisted_tool_over_a_readable_dataset(cast, rows, memberships) -> None:
    verdict = check_tool_call(subject=memberships["member"], tool=rows.tool, arguments=GOOD, datasets=[rows.dataset])
    assert verdict.allowed
    assert verdict.reasons == []
    assert bool(verdict) is True
    assert _denials(cast.acme) == []  # allows are not audited, denials are


def test_a_tool_that_is_not_allowlisted_is_refused(cast, rows, memberships) -> None:
    rows.tool.allowlisted = False
    verdict = check_tool_call(subject=memberships["member"], tool=rows.tool, arguments=GOOD)
    assert verdict.codes == ["tool_not_allowlisted"]


def test_lineage_a_viewer_lacks_tool_execute_and_dataset_read(cast, rows, memberships) -> None:
    verdict = check_tool_call(subject=memberships["viewer"], tool=rows.tool, arguments=GOOD, datasets=[rows.dataset])
    assert verdict.codes == ["tool_execute_denied", "dataset_read_denied"]
    lineage = verdict.reasons[1]
    assert lineage["path"] == "datasets[0]"
    assert "customers" in lineage["message"]
    (event,) = _denials(cast.acme)
    assert event.result == "denied"
    assert [r["code"] for r in event.metadata["reasons"]] == ["tool_execute_denied", "dataset_read_denied"]


def test_lineage_needs_read_on_every_dataset(cast, rows, memberships) -> None:
    viewer = memberships["viewer"]
    other = DatasetFactory(tenant=cast.acme, name="payroll")
    grant_assign(action="tool.execute", obj=rows.tool, membership=viewer)
    grant_assign(action="dataset.read", obj=rows.dataset, membership=viewer)
    viewer = Membership.objects.for_tenant(cast.acme).get(pk=viewer.pk)
    assert check_tool_call(subject=viewer, tool=rows.tool, arguments=GOOD, datasets=[rows.dataset]).allowed
    verdict = check_tool_call(subject=viewer, tool=rows.tool, arguments=GOOD, datasets=[rows.dataset, other])
    assert verdict.codes == ["dataset_read_denied"]
    assert verdict.reasons[0]["path"] == "datasets[1]"


def test_a_dataset_of_another_tenant_is_refused_without_revealing_it(cast, rows, memberships) -> None:
    verdict = check_tool_call(
        subject=memberships["owner"], tool=rows.tool, arguments=GOOD, datasets=[rows.dataset, rows.foreign_dataset]
    )
    assert verdict.codes == ["dataset_other_tenant"]
    assert verdict.reasons[0]["path"] == "datasets[1]"
    assert "globex-secrets" not in json.dumps(verdict.reasons)


def test_a_tool_of_another_tenant_is_refused_and_its_guardrails_are_not_consulted(cast, rows, memberships) -> None:
    arguments = {"query": {"text": 1}, "url": "https://evil.com/"}  # would fail the foreign schema and allowlist
    verdict = check_tool_call(subject=memberships["owner"], tool=rows.foreign_tool, arguments=arguments)
    assert verdict.codes == ["tool_other_tenant"]
    assert "globex_tool" not in json.dumps(verdict.reasons)
    (event,) = _denials(cast.acme)  # audited in the caller's tenant, not the victim's
    assert _denials(cast.globex) == []
    assert event.metadata["reasons"] == [{"code": "tool_other_tenant"}]


def test_schema_errors_carry_sorted_json_paths(cast, rows, memberships) -> None:
    arguments = {"query": {"text": 7, "limit": 0}, "url": 3}
    verdict = check_tool_call(subject=memberships["member"], tool=rows.tool, arguments=arguments)
    assert [(r["code"], r["path"]) for r in verdict.reasons] == [
        ("arguments_invalid", "$.query.limit"),
        ("arguments_invalid", "$.query.text"),
        ("arguments_invalid", "$.url"),
    ]
    assert verdict.reasons[0]["message"] == "0 is less than the minimum of 1"


def test_missing_required_properties_are_reported_at_the_parent(cast, rows, memberships) -> None:
    verdict = check_tool_call(subject=memberships["member"], tool=rows.tool, arguments={"query": {}})
    assert verdict.reasons == [
        {"code": "arguments_invalid", "message": "'text' is a required property", "path": "$.query"}
    ]


def test_every_reason_is_collected_not_just_the_first(cast, rows, memberships) -> None:
    rows.tool.allowlisted = False
    arguments = {"query": {"text": 1}, "url": "http://169.254.169.254/"}
    verdict = check_tool_call(
        subject=memberships["viewer"],
        tool=rows.tool,
        arguments=arguments,
        datasets=[rows.dataset, rows.foreign_dataset],
    )
    assert set(verdict.codes) == {
        "tool_not_allowlisted",
        "tool_execute_denied",
        "dataset_read_denied",
        "dataset_other_tenant",
        "arguments_invalid",
        "egress_ip_literal",
    }
    (event,) = _denials(cast.acme)
    assert event.metadata["reason_count"] == len(verdict.reasons)


def test_oversized_arguments_are_refused_and_not_inspected_further(cast, rows, memberships) -> None:
    arguments = {"query": {"text": "x" * DEFAULT_MAX_ARGUMENT_BYTES}, "url": "https://evil.com/"}
    verdict = check_tool_call(subject=memberships["member"], tool=rows.tool, arguments=arguments)
    assert verdict.codes == ["arguments_too_large"]
    assert "65,536 bytes" in verdict.reasons[0]["message"]
    (event,) = _denials(cast.acme)
    assert event.metadata["argument_bytes"] > DEFAULT_MAX_ARGUMENT_BYTES
    assert event.metadata["argument_cap_bytes"] == DEFAULT_MAX_ARGUMENT_BYTES


def test_the_tools_own_argument_cap_applies(cast, memberships) -> None:
    tool = ToolFactory(tenant=cast.acme, args_schema={}, args_cap_bytes=32)
    member = memberships["member"]
    assert check_tool_call(subject=member, tool=tool, arguments={"a": "x" * 10}).allowed
    verdict = check_tool_call(subject=member, tool=tool, arguments={"a": "x" * 40})
    assert verdict.codes == ["arguments_too_large"]
    big = ToolFactory(tenant=cast.acme, args_schema={}, args_cap_bytes=256 * 1024)
    assert check_tool_call(subject=member, tool=big, arguments={"a": "x" * 100_000}).allowed


def test_size_is_measured_in_utf8_bytes(cast, memberships) -> None:
    tool = ToolFactory(tenant=cast.acme, args_schema={}, args_cap_bytes=20)
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments={"a": "é" * 8})  # 8 chars, 16 bytes
    assert verdict.codes == ["arguments_too_large"]


def test_arguments_must_be_plain_json(cast, rows, memberships) -> None:
    verdict = check_tool_call(subject=memberships["member"], tool=rows.tool, arguments={"n": float("nan")})
    assert verdict.codes == ["arguments_not_json"]
    verdict = check_tool_call(subject=memberships["member"], tool=rows.tool, arguments={"s": {1, 2}})
    assert verdict.codes == ["arguments_not_json"]


def test_deep_nesting_is_refused_without_crashing(cast, memberships) -> None:
    tool = ToolFactory(tenant=cast.acme, args_schema={"type": "array"})
    arguments: list = []
    for _ in range(200):
        arguments = [arguments]
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments=arguments)
    assert verdict.codes == ["arguments_too_deep"]


def test_a_schema_written_around_the_service_fails_closed(cast, memberships) -> None:
    tool = ToolFactory(tenant=cast.acme, args_schema={"$ref": "https://evil.example/s.json"})
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments={})
    assert verdict.codes == ["tool_schema_invalid"]


def test_denials_never_put_argument_values_in_the_audit_log(cast, rows, memberships) -> None:
    secret = "sk-live-0123456789abcdefSECRET"
    arguments = {"query": {"text": 5, "token": secret}, "url": f"https://evil.com/?key={secret}"}
    verdict = check_tool_call(subject=memberships["member"], tool=rows.tool, arguments=arguments)
    assert not verdict.allowed
    (event,) = _denials(cast.acme)
    stored = json.dumps(event.metadata)
    assert secret not in stored
    assert "evil.com" not in stored
    assert "is not of type" not in stored  # messages may quote values; only codes and paths are kept
    assert {"code": "arguments_invalid", "path": "$.query.text"} in event.metadata["reasons"]
    assert event.target_type == "tool"
    assert event.target_id == str(rows.tool.pk)
    assert event.actor_id == str(cast.member.pk)


def test_the_decision_log_sees_the_refused_permissions(cast, rows, memberships) -> None:
    from apps.access.models import DeniedDecision

    check_tool_call(subject=memberships["viewer"], tool=rows.tool, arguments=GOOD, datasets=[rows.dataset])
    logged = set(DeniedDecision.objects.for_tenant(cast.acme).values_list("action", flat=True))
    assert {"tool.execute", "dataset.read"} <= logged


def test_reasons_stay_short_whatever_the_values(cast, memberships) -> None:
    tool = ToolFactory(
        tenant=cast.acme,
        args_schema={"type": "object", "additionalProperties": {"type": "integer"}},
        egress_allowlist=[],
    )
    long_key = "k" * 5000
    verdict = check_tool_call(subject=memberships["member"], tool=tool, arguments={long_key: "v" * 50_000})
    assert verdict.codes == ["arguments_invalid"]
    assert len(verdict.reasons[0]["message"]) <= 300
    assert len(verdict.reasons[0]["path"]) <= 300
