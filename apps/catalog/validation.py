"""Input rules for catalog entries: tags, tool argument schemas and egress allowlists.

The services call these before every write; forms only parse text into
Python values and let the service's ValidationError come back to the field.

Regular expressions in argument schemas (``pattern``, ``patternProperties``,
and the ``regex`` format) run on RE2 (google-re2), whose matching time is
linear in the input: Python's backtracking ``re`` spends minutes on
``^(a+)+$`` against forty characters. RE2 has no backreferences or
lookaround, so schemas using them are refused when saved. Validating one
call's arguments is also bounded in time (``argument_errors``).
"""

from __future__ import annotations

import contextvars
import functools
import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import re2
from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaValidationError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from apps.catalog.hosts import HostError, normalise_allowlist_entry

KIB = 1024
MIB = 1024 * KIB
MAX_SCHEMA_BYTES = 64 * KIB
MAX_TAGS = 20
MAX_TAG_LENGTH = 32
MAX_ALLOWLIST_ENTRIES = 100
MAX_OUTPUT_CAP_BYTES = 10 * MIB
MAX_ARGS_CAP_BYTES = 1 * MIB
# A schema nested deeper than this is almost certainly an attack on the
# recursive validator, not a description of tool arguments.
MAX_SCHEMA_DEPTH = 32
SCHEMA_DIALECTS = frozenset(
    {"https://json-schema.org/draft/2020-12/schema", "https://json-schema.org/draft/2020-12/schema#"}
)

# Validating one call's arguments may take at most this long (RE2 keeps each match linear; this
# bounds the rest, e.g. a schema that makes every value of a 1 MiB document pass many subschemas).
MAX_VALIDATION_SECONDS = 2.0
MAX_PATTERN_LENGTH = 4096

_TAG_RE = re.compile(rf"^[a-z0-9][a-z0-9_.:-]{{0,{MAX_TAG_LENGTH - 1}}}$")
_REF_KEYWORDS = ("$ref", "$dynamicRef")


def canonical_json(value: Any) -> str:
    """Compact, key-sorted JSON: the form sizes and digests are computed on."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_digest(value: Any) -> dict[str, Any]:
    """Size and SHA-256 of a JSON document: what the audit log keeps instead of the document."""
    text = canonical_json(value).encode()
    return {"bytes": len(text), "sha256": hashlib.sha256(text).hexdigest()}


def normalise_tags(tags: Iterable[str]) -> list[str]:
    """Lower-cased, de-duplicated tags in the given order. Raises ValidationError naming each bad tag."""
    clean: list[str] = []
    errors: list[str] = []
    for raw in tags:
        tag = str(raw).strip().lower()
        if not tag:
            continue
        if not _TAG_RE.match(tag):
            errors.append(
                f"“{tag[:40]}” is not a valid tag: use up to {MAX_TAG_LENGTH} lowercase letters, digits "
                "or . _ : - (starting with a letter or digit)."
            )
        elif tag not in clean:
            clean.append(tag)
    if len(clean) > MAX_TAGS:
        errors.append(f"Use at most {MAX_TAGS} tags (you gave {len(clean)}).")
    if errors:
        raise ValidationError(errors)
    return clean


def normalise_egress_allowlist(entries: Iterable[str]) -> list[str]:
    """Canonical, de-duplicated allowlist entries. Raises ValidationError naming each bad entry."""
    clean: list[str] = []
    errors: list[str] = []
    for raw in entries:
        text = str(raw).strip()
        if not text:
            continue
        try:
            entry = normalise_allowlist_entry(text)
        except HostError as exc:
            errors.append(f"“{text[:80]}” {exc}.")
            continue
        if entry not in clean:
            clean.append(entry)
    if len(clean) > MAX_ALLOWLIST_ENTRIES:
        errors.append(f"Use at most {MAX_ALLOWLIST_ENTRIES} hosts (you gave {len(clean)}).")
    if errors:
        raise ValidationError(errors)
    return clean


def _walk_schema(schema: Any) -> tuple[list[str], list[str], int]:
    """Local refs, problems and the maximum depth of a schema, without recursion."""
    refs: list[str] = []
    problems: list[str] = []
    deepest = 0
    stack: list[tuple[Any, str, int]] = [(schema, "$", 0)]
    while stack:
        node, path, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_SCHEMA_DEPTH:
            continue
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _REF_KEYWORDS and isinstance(value, str):
                    if value == "#" or value.startswith("#/"):
                        refs.append(value)
                    else:
                        problems.append(
                            f"{key} “{value[:120]}” at {path} is not allowed: only local references "
                            "(“#/…”) are, so that validating never fetches anything."
                        )
                stack.append((value, f"{path}.{key}", depth + 1))
        elif isinstance(node, list):
            stack.extend((item, f"{path}[{index}]", depth + 1) for index, item in enumerate(node))
    return refs, problems, deepest


def validate_args_schema(schema: Any) -> None:
    """Check a tool's argument schema; raise ValidationError with plain messages.

    The schema must be a JSON object, at most 64 KiB as compact JSON, a valid
    JSON Schema 2020-12 document (``Draft202012Validator.check_schema``; the
    error names the path inside the schema), use only local ``$ref`` values
    (``#`` or ``#/…``) that resolve, and not be absurdly deep.
    """
    if not isinstance(schema, dict):
        raise ValidationError('The argument schema must be a JSON object, e.g. {"type": "object"}.')
    try:
        size = len(canonical_json(schema).encode())
    except ValueError:
        raise ValidationError("The argument schema must be plain JSON (no NaN or Infinity).") from None
    if size > MAX_SCHEMA_BYTES:
        raise ValidationError(f"The argument schema is {size:,} bytes; the limit is {MAX_SCHEMA_BYTES:,} bytes.")
    dialect = schema.get("$schema")
    if dialect is not None and dialect not in SCHEMA_DIALECTS:
        raise ValidationError(
            "Only JSON Schema draft 2020-12 is supported: leave out $schema or set it to "
            "https://json-schema.org/draft/2020-12/schema."
        )
    refs, problems, depth = _walk_schema(schema)
    if depth > MAX_SCHEMA_DEPTH:
        raise ValidationError(f"The argument schema is nested more than {MAX_SCHEMA_DEPTH} levels deep.")
    if problems:
        raise ValidationError(problems)
    if _uses_both(schema, "unevaluatedProperties", "patternProperties"):
        raise ValidationError(
            "unevaluatedProperties cannot be combined with patternProperties here; "
            "use additionalProperties instead of unevaluatedProperties."
        )
    try:
        # The metaschema declares every ``pattern`` and ``patternProperties`` key as format "regex":
        # with the RE2 format checker that refuses exactly the patterns RE2 cannot run.
        Draft202012Validator.check_schema(schema, format_checker=_FORMAT_CHECKER)
    except SchemaError as exc:
        if exc.validator == "format" and exc.validator_value == "regex":
            raise ValidationError(
                f"The pattern “{str(exc.instance)[:120]}” at {exc.json_path} {_pattern_problem(exc.instance)}."
            ) from None
        raise ValidationError(f"Not a valid JSON Schema: {exc.message} (at {exc.json_path}).") from None
    resolver = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
    missing = []
    for ref in refs:
        try:
            resolver.lookup(ref)
        except Unresolvable:
            missing.append(f"$ref “{ref[:120]}” points to nothing in this schema.")
    if missing:
        raise ValidationError(missing)


# --- regular expressions on RE2, and a time bound ---------------------------------------------


class ValidationTimeoutError(Exception):
    """Validating the arguments took longer than allowed; the call is refused, not checked further."""


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a refused pattern is a user error, not something for the server log
_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("argument_validation_deadline", default=None)


@functools.lru_cache(maxsize=1024)
def _compiled(pattern: str) -> Any:
    """The RE2 program for ``pattern``; raises ``re2.error`` (or ValueError when it is too long)."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"is longer than {MAX_PATTERN_LENGTH} characters")
    return re2.compile(pattern, options=_RE2_OPTIONS)


def _pattern_problem(pattern: Any) -> str:
    """Why ``pattern`` cannot be used (completes “The pattern … ”)."""
    if not isinstance(pattern, str):
        return "is not a string"
    try:
        _compiled(pattern)
    except ValueError as exc:
        return str(exc)
    except re2.error as exc:
        detail = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return (
            "cannot be used: tool schemas use a linear-time regular-expression engine (RE2), which has no "
            f"backreferences (\\1), lookahead or lookbehind ({detail[:120]})"
        )
    return "cannot be used"


def _search(pattern: str, text: str) -> bool:
    try:
        regex = _compiled(pattern)
    except (re2.error, ValueError):
        # Saved schemas were checked; one that was not is refused rather than run on a backtracking engine.
        raise SchemaError(f"pattern {pattern[:120]!r} {_pattern_problem(pattern)}") from None
    return regex.search(text) is not None


def _is_re2_regex(instance: object) -> bool:
    if not isinstance(instance, str):
        return True
    try:
        _compiled(instance)
    except (re2.error, ValueError):
        return False
    return True


_FORMAT_CHECKER = FormatChecker()
# For checking schemas only (their ``pattern`` values); this instance only, the library's default stays.
_FORMAT_CHECKER.checks("regex")(_is_re2_regex)


def _check_deadline() -> None:
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise ValidationTimeoutError


def _timed(keyword: Callable[..., Any]) -> Callable[..., Iterator[SchemaValidationError]]:
    """Wrap a keyword so that every evaluation first checks the call's deadline."""

    @functools.wraps(keyword)
    def checked(validator: Any, value: Any, instance: Any, schema: Any) -> Iterator[SchemaValidationError]:
        _check_deadline()
        errors = keyword(validator, value, instance, schema)
        if errors is not None:
            yield from errors

    return checked


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[SchemaValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield SchemaValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(
    validator: Any, patterns: dict[str, Any], instance: Any, schema: Any
) -> Iterator[SchemaValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _search(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Any
) -> Iterator[SchemaValidationError]:
    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [
        key for key in instance if key not in properties and not any(_search(pattern, key) for pattern in patterns)
    ]
    if validator.is_type(additional, "object"):
        for key in extras:
            yield from validator.descend(instance[key], additional, path=key)
    elif not additional and extras:
        # The library's wording, so that messages do not change with the engine.
        if patterns:
            verb = "does" if len(extras) == 1 else "do"
            joined = ", ".join(repr(key) for key in sorted(extras))
            regexes = ", ".join(repr(pattern) for pattern in sorted(patterns))
            yield SchemaValidationError(f"{joined} {verb} not match any of the regexes: {regexes}")
        else:
            verb = "was" if len(extras) == 1 else "were"
            joined = ", ".join(repr(key) for key in sorted(extras))
            yield SchemaValidationError(f"Additional properties are not allowed ({joined} {verb} unexpected)")


def _canonical_item(value: Any) -> Any:
    """A hashable form in which equal JSON values (1 and 1.0, key order) coincide and true ≠ 1."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return (type(value).__name__, value)
    if isinstance(value, int | float):
        return ("number", int(value) if isinstance(value, float) and value.is_integer() else value)
    if isinstance(value, dict):
        return ("object", frozenset((key, _canonical_item(item)) for key, item in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_canonical_item(item) for item in value))
    return ("other", repr(value))


def _unique_items(validator: Any, unique: bool, instance: Any, schema: Any) -> Iterator[SchemaValidationError]:
    # The library compares unorderable items (objects) pairwise: 2,000 of them take seconds. Hashing is linear.
    if not unique or not validator.is_type(instance, "array"):
        return
    seen: set[Any] = set()
    for item in instance:
        key = _canonical_item(item)
        if key in seen:
            yield SchemaValidationError(f"{instance!r} has non-unique elements")
            return
        seen.add(key)


_ArgumentValidator = validators.extend(
    Draft202012Validator,
    {
        **{name: _timed(keyword) for name, keyword in Draft202012Validator.VALIDATORS.items()},
        "pattern": _timed(_pattern),
        "patternProperties": _timed(_pattern_properties),
        "additionalProperties": _timed(_additional_properties),
        "uniqueItems": _timed(_unique_items),
    },
)


def _uses_both(schema: Any, first: str, second: str) -> bool:
    """Does the schema use both keywords anywhere? (unevaluatedProperties would run patterns on ``re``)."""
    found: set[str] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            found.update(key for key in (first, second) if key in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return {first, second} <= found


def argument_validator(schema: dict[str, Any]) -> Any:
    """A validator for tool arguments that can never fetch a remote document and never backtracks.

    The empty registry has no retrieval function, so a ``$ref`` that slipped
    past ``validate_args_schema`` raises instead of reaching the network.
    Patterns run on RE2; a pattern RE2 cannot compile raises SchemaError, and
    so does a schema combining ``unevaluatedProperties`` with
    ``patternProperties`` (the library would match those with ``re``).
    """
    if _uses_both(schema, "unevaluatedProperties", "patternProperties"):
        raise SchemaError("unevaluatedProperties with patternProperties is not supported")
    # Argument values with format "regex" keep the library's check: a tool that takes a regex runs it
    # in its own engine, and compiling (not matching) is what the check does.
    return _ArgumentValidator(schema, registry=Registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


def argument_errors(
    schema: dict[str, Any], arguments: Any, *, timeout: float = MAX_VALIDATION_SECONDS
) -> list[SchemaValidationError]:
    """Every schema error of ``arguments``, sorted by path, found within ``timeout`` seconds.

    Raises ValidationTimeoutError past the deadline, and SchemaError, UnknownType
    or Unresolvable when the schema itself cannot be used.
    """
    validator = argument_validator(schema)
    token = _deadline.set(time.monotonic() + timeout)
    try:
        return sorted(validator.iter_errors(arguments), key=lambda e: (e.json_path, e.message))
    finally:
        _deadline.reset(token)


def parse_json_document(text: str, *, max_bytes: int) -> Any:
    """Parse JSON typed by a person; raise ValidationError saying where it is broken.

    Refuses more than ``max_bytes`` of UTF-8 before parsing, NaN and Infinity
    (not JSON), and nesting deep enough to exhaust the parser.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise ValidationError(f"This is {size:,} bytes; the limit is {max_bytes:,} bytes.")

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed in JSON")

    try:
        return json.loads(text, parse_constant=refuse_constant)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno}).") from None
    except ValueError as exc:
        raise ValidationError(f"Not valid JSON: {exc}.") from None
    except RecursionError:
        raise ValidationError("Not valid JSON: nested too deeply.") from None
