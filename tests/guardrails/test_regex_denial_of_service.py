"""A tool schema cannot stall a worker: patterns run on RE2 (linear time) and validation has a deadline.

The attacker is a tenant admin (or anyone who can edit a tool) who saves a
schema with a catastrophic pattern, then a caller who sends the input that
makes a backtracking engine take minutes — for every tenant on that worker.
"""

from __future__ import annotations

import time

import pytest

from apps.catalog.services import tool_create
from apps.guardrails import services as guardrails
from apps.guardrails.services import check_tool_call

pytestmark = pytest.mark.django_db

EVIL = "^(a+)+$"
ATTACK = "a" * 40 + "!"  # Python's re needs about 2**40 steps to say "no"


def _tool(cast, schema):
    return tool_create(tenant=cast.acme, name="evil_regex", args_schema=schema, allowlisted=True, actor=cast.owner)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "object", "properties": {"q": {"type": "string", "pattern": EVIL}}},
        {"type": "object", "patternProperties": {EVIL: {"type": "integer"}}},
        {"type": "object", "patternProperties": {EVIL: {}}, "additionalProperties": False},
    ],
    ids=["pattern", "patternProperties", "additionalProperties"],
)
def test_a_catastrophic_pattern_answers_at_once(cast, memberships, schema) -> None:
    tool = _tool(cast, schema)
    started = time.monotonic()
    verdict = check_tool_call(
        subject=memberships["owner"], tool=tool, arguments={"q": ATTACK, ATTACK: "x", "aaaa": "x"}
    )
    elapsed = time.monotonic() - started

    assert elapsed < 1.0
    assert not verdict.allowed
    assert "arguments_invalid" in verdict.codes


def test_matching_still_works(cast, memberships) -> None:
    tool = _tool(cast, {"type": "object", "properties": {"q": {"type": "string", "pattern": EVIL}}})

    assert check_tool_call(subject=memberships["owner"], tool=tool, arguments={"q": "aaaa"}).allowed
    assert not check_tool_call(subject=memberships["owner"], tool=tool, arguments={"q": "aab"}).allowed


def test_unique_items_over_many_objects_is_linear(cast, memberships) -> None:
    tool = _tool(cast, {"type": "object", "properties": {"items": {"type": "array", "uniqueItems": True}}})
    items = [{"n": i} for i in range(3000)]  # ~30 KB: the library compares objects pairwise (seconds)

    started = time.monotonic()
    allowed = check_tool_call(subject=memberships["owner"], tool=tool, arguments={"items": items})
    duplicate = check_tool_call(subject=memberships["owner"], tool=tool, arguments={"items": [*items, {"n": 7.0}]})

    assert time.monotonic() - started < 1.0
    assert allowed.allowed
    assert duplicate.codes == ["arguments_invalid"]


def test_validation_past_its_deadline_refuses_the_call(cast, memberships, monkeypatch) -> None:
    tool = _tool(cast, {"type": "object", "properties": {"q": {"type": "string", "pattern": "^a+$"}}})
    monkeypatch.setattr(guardrails, "MAX_VALIDATION_SECONDS", 0.0)

    verdict = check_tool_call(subject=memberships["owner"], tool=tool, arguments={"q": "aaa"})

    assert verdict.codes == ["arguments_check_timeout"]


def test_a_schema_written_around_the_service_with_a_backreference_is_refused_not_run(cast, memberships) -> None:
    tool = _tool(cast, {"type": "object"})
    tool.args_schema = {"type": "object", "properties": {"q": {"type": "string", "pattern": "^(a+)\\1$"}}}
    tool.save(update_fields=["args_schema"])  # no service: no save-time check

    verdict = check_tool_call(subject=memberships["owner"], tool=tool, arguments={"q": "aa"})

    assert verdict.codes == ["tool_schema_invalid"]
