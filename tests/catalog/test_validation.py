"""Argument schemas, tags, allowlists and typed JSON: what is refused, and in which words."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from apps.catalog.validation import (
    MAX_SCHEMA_BYTES,
    normalise_egress_allowlist,
    normalise_tags,
    parse_json_document,
    validate_args_schema,
)


def _messages(schema: object) -> str:
    with pytest.raises(ValidationError) as caught:
        validate_args_schema(schema)
    return " ".join(caught.value.messages)


def test_a_valid_schema_with_local_refs_passes() -> None:
    validate_args_schema(
        {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "$defs": {"limit": {"type": "integer", "minimum": 1}},
            "properties": {"limit": {"$ref": "#/$defs/limit"}, "self": {"$ref": "#"}},
        }
    )


def test_an_invalid_schema_names_the_jsonschema_error_and_its_path() -> None:
    message = _messages({"type": "strnig"})
    assert "Not a valid JSON Schema" in message
    assert "'strnig' is not valid under any of the given schemas" in message
    assert "$.type" in message


def test_nested_schema_errors_carry_their_path() -> None:
    message = _messages({"type": "object", "properties": {"limit": {"minimum": "one"}}})
    assert "'one' is not of type 'number'" in message
    assert "$.properties.limit.minimum" in message


@pytest.mark.parametrize(
    "ref",
    [
        "https://evil.example/schema.json",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "other.json#/defs/x",
        "//evil.example/s.json",
        "urn:example:thing",
        "#anchor",
    ],
)
def test_remote_and_relative_refs_are_refused(ref: str) -> None:
    message = _messages({"type": "object", "properties": {"x": {"$ref": ref}}})
    assert "only local references" in message
    assert "$.properties.x" in message


def test_remote_dynamic_refs_are_refused_too() -> None:
    assert "only local references" in _messages({"$dynamicRef": "https://evil.example/meta"})


def test_a_local_ref_must_point_somewhere() -> None:
    assert "points to nothing" in _messages({"properties": {"x": {"$ref": "#/$defs/missing"}}})


def test_a_property_named_ref_is_not_a_reference() -> None:
    validate_args_schema({"type": "object", "properties": {"$ref": {"type": "string"}}})


def test_schemas_over_64_kib_are_refused() -> None:
    schema = {"type": "object", "description": "x" * MAX_SCHEMA_BYTES}
    assert "the limit is 65,536 bytes" in _messages(schema)


@pytest.mark.parametrize("schema", [[], "string", 1, True, None])
def test_the_schema_must_be_an_object(schema: object) -> None:
    assert "must be a JSON object" in _messages(schema)


def test_other_dialects_are_refused() -> None:
    assert "2020-12" in _messages({"$schema": "http://json-schema.org/draft-04/schema#"})


def test_absurd_nesting_is_refused() -> None:
    schema: dict = {"type": "object"}
    for _ in range(40):
        schema = {"type": "object", "properties": {"x": schema}}
    assert "nested more than" in _messages(schema)


def test_tags_are_normalised_and_checked() -> None:
    assert normalise_tags([" PII ", "pii", "finance", ""]) == ["pii", "finance"]
    with pytest.raises(ValidationError, match="not a valid tag"):
        normalise_tags(["ok", "no spaces allowed"])
    with pytest.raises(ValidationError, match="at most 20 tags"):
        normalise_tags([f"t{i}" for i in range(21)])


def test_allowlists_report_every_bad_entry() -> None:
    assert normalise_egress_allowlist(["API.example.com", "api.example.com", "", "*.example.org"]) == [
        "api.example.com",
        "*.example.org",
    ]
    with pytest.raises(ValidationError) as caught:
        normalise_egress_allowlist(["https://a.example.com/x", "ok.example.com", "b.example.com:99999"])
    assert len(caught.value.messages) == 2
    assert "https://a.example.com/x" in caught.value.messages[0]


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ('{"a": 1,}', "line 1, column 9"),
        ('{"a": NaN}', "NaN is not allowed"),
        ('{"a": Infinity}', "Infinity is not allowed"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("x" * 2000, "the limit is 1,000 bytes"),
    ],
)
def test_typed_json_errors_say_where(text: str, complaint: str) -> None:
    with pytest.raises(ValidationError, match=complaint):
        parse_json_document(text, max_bytes=1000 if complaint.startswith("the limit") else 10**6)


# --- regular expressions: RE2 only (no catastrophic backtracking) -----------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "string", "pattern": "^(a+)\\1$"},  # backreference
        {"type": "string", "pattern": "^(?=.*\\d)\\w+$"},  # lookahead
        {"type": "string", "pattern": "(?<!x)y"},  # lookbehind
        {"type": "object", "patternProperties": {"^(?!secret)": {}}},
        {"properties": {"deep": {"items": {"pattern": "(x)\\1"}}}},
    ],
)
def test_patterns_the_linear_engine_cannot_run_are_refused_at_save_time(schema: dict) -> None:
    message = _messages(schema)
    assert "linear-time regular-expression engine (RE2)" in message
    assert "backreferences" in message


def test_a_catastrophic_pattern_saves_and_a_property_named_pattern_is_not_a_pattern() -> None:
    validate_args_schema({"type": "string", "pattern": "^(a+)+$"})  # linear on RE2: harmless
    validate_args_schema({"type": "object", "properties": {"pattern": {"const": "(a)\\1"}}})


def test_unevaluated_properties_with_pattern_properties_is_refused() -> None:
    # jsonschema evaluates that combination with Python's backtracking re.
    message = _messages({"type": "object", "patternProperties": {"^x": {}}, "unevaluatedProperties": False})
    assert "unevaluatedProperties" in message


def test_an_absurdly_long_pattern_is_refused() -> None:
    assert "longer than" in _messages({"type": "string", "pattern": "a" * 5000})
