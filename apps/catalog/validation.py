"""Input rules for catalog entries: tags, tool argument schemas and egress allowlists.

The services call these before every write; forms only parse text into
Python values and let the service's ValidationError come back to the field.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
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
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
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


def argument_validator(schema: dict[str, Any]) -> Draft202012Validator:
    """A validator for tool arguments that can never fetch a remote document.

    The empty registry has no retrieval function, so a ``$ref`` that slipped
    past ``validate_args_schema`` raises instead of reaching the network.
    """
    return Draft202012Validator(schema, registry=Registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)


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
