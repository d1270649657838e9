"""Tool-call guardrails: may this subject call this tool with these arguments over these datasets?

``check_tool_call`` and ``check_tool_output`` return a ``Verdict`` carrying
every reason for a denial (they collect, never stop at the first). Each
denial is written to the audit log with reason codes, JSON paths and sizes
only: argument values and messages (which can quote values, e.g. a host or a
schema error) stay out of the log because arguments may hold secrets.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NotRequired, TypedDict

from jsonschema.exceptions import SchemaError, UnknownType
from referencing.exceptions import Unresolvable

from apps.access.decisions import authorize
from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record
from apps.catalog import permissions
from apps.catalog.models import Dataset, Tool
from apps.catalog.validation import KIB, MAX_VALIDATION_SECONDS, ValidationTimeoutError, argument_errors
from apps.core import context
from apps.guardrails.egress import check_url, find_urls
from apps.tenants.models import Membership

DEFAULT_MAX_ARGUMENT_BYTES = 64 * KIB
# Deeper than this, the recursive schema validator could exhaust the stack.
MAX_ARGUMENT_DEPTH = 64
# Enough to fix a call; beyond it the verdict (and the audit event) would only grow.
MAX_REASONS_PER_KIND = 50
# Checking a URL is cheap, but arguments can be built to contain a great many;
# past this count the call is refused instead of checked further.
MAX_URLS_CHECKED = 500
MAX_MESSAGE_LENGTH = 300
_IDENTIFIER_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")


class Reason(TypedDict):
    """Why a call is denied: a stable ``code``, a message for people and, for arguments, a JSON path."""

    code: str
    message: str
    path: NotRequired[str]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of a guardrail check: allowed, or denied with every reason found."""

    allowed: bool
    reasons: list[Reason] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.allowed

    @property
    def codes(self) -> list[str]:
        return [reason["code"] for reason in self.reasons]


def json_path(parts: Sequence[str | int]) -> str:
    """``$.query.limit``, ``$.items[0]``, ``$['odd key']`` — the notation jsonschema's ``json_path`` uses."""
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif _IDENTIFIER_RE.match(part):
            path += f".{part}"
        else:
            path += "['" + part.replace("\\", "\\\\").replace("'", "\\'") + "']"
    return path


def _shorten(message: str) -> str:
    """jsonschema quotes failing values in full and keys make paths: a 1 MiB value must not make a 1 MiB reason."""
    return message if len(message) <= MAX_MESSAGE_LENGTH else message[: MAX_MESSAGE_LENGTH - 1] + "…"


def _reason(code: str, message: str, path: str | None = None) -> Reason:
    reason: Reason = {"code": code, "message": message}
    if path is not None:
        reason["path"] = _shorten(path)
    return reason


def _strings(value: Any) -> Iterator[tuple[tuple[str | int, ...], str]]:
    """Every string (object keys too) with its path and depth; iterative, so depth cannot crash it.

    A URL found in a key is reported at the object's path, so the audit log
    never carries the key's text as part of a path.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            yield path, node
        elif isinstance(node, dict):
            for key, item in node.items():
                yield path, str(key)
                stack.append((item, (*path, str(key))))
        elif isinstance(node, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(node))


def _depth(value: Any) -> int:
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((item, depth + 1) for item in node.values())
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
    return deepest


def _capped(reasons: list[Reason], kind: str) -> list[Reason]:
    if len(reasons) <= MAX_REASONS_PER_KIND:
        return reasons
    more = len(reasons) - MAX_REASONS_PER_KIND
    return [*reasons[:MAX_REASONS_PER_KIND], _reason(f"{kind}_more", f"…and {more} more {kind.replace('_', ' ')}.")]


def _schema_reasons(tool: Tool, arguments: Any) -> list[Reason]:
    try:
        errors = argument_errors(tool.args_schema, arguments, timeout=MAX_VALIDATION_SECONDS)
    except ValidationTimeoutError:
        return [
            _reason(
                "arguments_check_timeout",
                f"Checking the arguments against the tool's schema took longer than {MAX_VALIDATION_SECONDS:g} s; "
                "the call is refused.",
                "$",
            )
        ]
    except (SchemaError, UnknownType, Unresolvable, RecursionError):
        # The schema was checked on save; reaching this means it was written
        # around the service. Refuse rather than guess.
        return [_reason("tool_schema_invalid", "The tool's argument schema is invalid; ask an admin to fix it.")]
    reasons = [
        _reason("arguments_invalid", _shorten(error.message), json_path(list(error.absolute_path))) for error in errors
    ]
    return _capped(reasons, "arguments_invalid")


def _egress_reasons(tool: Tool, arguments: Any) -> list[Reason]:
    allowlist = list(tool.egress_allowlist or [])
    reasons: list[Reason] = []
    seen: set[tuple[str, str, str]] = set()
    budget = MAX_URLS_CHECKED
    for path_parts, text in _strings(arguments):
        if not any(char in text for char in ":/\\%"):
            continue  # cheap pre-filter: no URL can hide in this string
        path = json_path(list(path_parts))
        urls, truncated = find_urls(text, limit=budget)
        budget -= len(urls)
        if truncated or budget < 0:
            message = f"The arguments contain more than {MAX_URLS_CHECKED} URLs; they were not all checked."
            return _sorted_egress([*reasons, _reason("egress_too_many_urls", message, "$")])
        for url in urls:
            for problem in check_url(url, allowlist):
                key = (problem.code, problem.message, path)
                if key not in seen:
                    seen.add(key)
                    reasons.append(_reason(problem.code, f"{problem.message}.", path))
    return _sorted_egress(reasons)


def _sorted_egress(reasons: list[Reason]) -> list[Reason]:
    return _capped(sorted(reasons, key=lambda r: (r.get("path", ""), r["code"], r["message"])), "egress_problems")


def _actor_for(subject: Membership) -> Actor:
    if not isinstance(subject, Membership):
        # An API client (``access.subjects.Subject``) asking through the runtime API: it has no user.
        return Actor(AuditEvent.ActorType.API_CLIENT, str(subject.pk), getattr(subject, "subject_label", ""))
    current = context.current()
    if current.user_id is not None and current.user_id == subject.user_id:
        return Actor.from_context()
    return Actor(AuditEvent.ActorType.USER, str(subject.user_id), "")


def _audit_denial(
    action: str, *, tenant_id: int, actor: Actor, target: Tool, reasons: list[Reason], sizes: dict[str, Any]
) -> None:
    record(
        action,
        tenant=tenant_id,
        actor=actor,
        target_type="tool",
        target_id=target.pk,
        result=AuditEvent.Result.DENIED,
        metadata={
            **sizes,
            "reason_count": len(reasons),
            "reasons": [{"code": r["code"], **({"path": r["path"]} if "path" in r else {})} for r in reasons],
        },
    )


def check_tool_call(
    *,
    subject: Membership,
    tool: Tool,
    arguments: Any,
    datasets: Iterable[Dataset] = (),
) -> Verdict:
    """May ``subject`` call ``tool`` with ``arguments`` over ``datasets``? Collects every reason to refuse.

    Tenant: the subject's. A tool or dataset of another tenant is refused (and
    a foreign tool's schema and allowlist are never consulted, so nothing
    about it leaks). Checks, all of them every time:

    - the tool is allowlisted for the tenant;
    - ``authorize(subject, "tool.execute", tool)``;
    - data lineage: ``authorize(subject, "dataset.read", ds)`` for each dataset;
    - the arguments are JSON, at most the tool's ``args_cap_bytes`` (default
      64 KiB) as compact UTF-8 JSON — larger ones are not inspected further —
      and at most 64 levels deep;
    - the arguments satisfy the tool's schema (each error with its JSON path),
      checked with linear-time regular expressions (RE2) and within
      ``MAX_VALIDATION_SECONDS`` (past it the call is refused);
    - every URL in any string (keys included) is http(s), unambiguous, and
      its host is in the tool's egress allowlist (see apps.guardrails.egress).

    A denial is audited as ``guardrail.tool_call`` / ``denied`` with reason
    codes, paths and sizes, never argument values. Raises nothing for bad
    input; every problem becomes a reason.
    """
    tenant_id = subject.tenant_id
    reasons: list[Reason] = []
    own_tool = tool.tenant_id == tenant_id
    if not own_tool:
        reasons.append(_reason("tool_other_tenant", "The tool belongs to another tenant."))
    else:
        if not tool.allowlisted:
            reasons.append(_reason("tool_not_allowlisted", f"Tool “{tool.name}” is not allowlisted for this tenant."))
        decision = authorize(subject, permissions.TOOL_EXECUTE, tool)
        if not decision.allowed:
            why = "; ".join(decision.reasons)
            reasons.append(_reason("tool_execute_denied", f"You may not run tool “{tool.name}” ({why})."))

    dataset_ids: list[int] = []
    for index, dataset in enumerate(datasets):
        dataset_ids.append(dataset.pk)
        if dataset.tenant_id != tenant_id:
            reasons.append(
                _reason(
                    "dataset_other_tenant", f"Dataset #{dataset.pk} belongs to another tenant.", f"datasets[{index}]"
                )
            )
            continue
        decision = authorize(subject, permissions.DATASET_READ, dataset)
        if not decision.allowed:
            why = "; ".join(decision.reasons)
            reasons.append(
                _reason(
                    "dataset_read_denied",
                    f"Data lineage: you may not read dataset “{dataset.name}” ({why}).",
                    f"datasets[{index}]",
                )
            )

    cap = (tool.args_cap_bytes if own_tool else None) or DEFAULT_MAX_ARGUMENT_BYTES
    try:
        size = len(json.dumps(arguments, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError, RecursionError):
        size = None
        reasons.append(_reason("arguments_not_json", "The arguments are not plain JSON.", "$"))
    if size is not None and size > cap:
        reasons.append(
            _reason(
                "arguments_too_large",
                f"The arguments are {size:,} bytes; this tool accepts at most {cap:,} bytes, "
                "so they were not inspected further.",
                "$",
            )
        )
    elif size is not None and own_tool:
        depth = _depth(arguments)
        if depth > MAX_ARGUMENT_DEPTH:
            reasons.append(
                _reason("arguments_too_deep", f"The arguments nest {depth} levels; at most {MAX_ARGUMENT_DEPTH}.", "$")
            )
        else:
            reasons.extend(_schema_reasons(tool, arguments))
        reasons.extend(_egress_reasons(tool, arguments))

    if reasons:
        _audit_denial(
            "guardrail.tool_call",
            tenant_id=tenant_id,
            actor=_actor_for(subject),
            target=tool,
            reasons=reasons,
            sizes={"tool_id": tool.pk, "dataset_ids": dataset_ids, "argument_bytes": size, "argument_cap_bytes": cap},
        )
        return Verdict(False, reasons)
    return Verdict(True, [])


def _byte_length(output: bytes | str, cap: int) -> int:
    """The output's size in bytes, or a lower bound already over ``cap`` (no need to encode megabytes)."""
    if isinstance(output, bytes):
        return len(output)
    # Every character is at least one UTF-8 byte.
    if len(output) > cap:
        return len(output)
    return len(output.encode("utf-8", "surrogatepass"))


def check_tool_output(*, tool: Tool, output: bytes | str) -> Verdict:
    """Is ``output`` within ``tool.output_cap_bytes`` (UTF-8 bytes for text)?

    Tenant: the tool's. A denial is audited as ``guardrail.tool_output`` /
    ``denied`` with the sizes only, never the output. Raises nothing.
    """
    cap = tool.output_cap_bytes
    size = _byte_length(output, cap)
    if size <= cap:
        return Verdict(True, [])
    reasons = [
        _reason("output_too_large", f"The tool's output is over its cap of {cap:,} bytes (at least {size:,} bytes).")
    ]
    _audit_denial(
        "guardrail.tool_output",
        tenant_id=tool.tenant_id,
        actor=Actor.from_context(),
        target=tool,
        reasons=reasons,
        sizes={"tool_id": tool.pk, "output_bytes_at_least": size, "output_cap_bytes": cap},
    )
    return Verdict(False, reasons)
