"""Per-request context (request id, client IP, user agent, user, tenant).

Stored in a ContextVar so that the audit service and the JSON log formatter see
the same values without every caller passing the request around. Celery tasks
set their own context (see ``bind``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class RequestContext:
    request_id: str = ""
    ip: str | None = None
    user_agent: str = ""
    user_id: int | None = None
    user_display: str = ""
    tenant_id: int | None = None
    tenant_slug: str = ""


_current: ContextVar[RequestContext] = ContextVar("bastion_request_context", default=RequestContext())  # noqa: B039


def current() -> RequestContext:
    """The context of the request or task being served (empty outside of one)."""
    return _current.get()


def update(**changes: object) -> None:
    """Refine the current context, e.g. once the user or tenant is known."""
    _current.set(replace(_current.get(), **changes))  # type: ignore[arg-type]


@contextlib.contextmanager
def bind(**values: object) -> Iterator[RequestContext]:
    """Run a block with a fresh context; restores the previous one afterwards."""
    values.setdefault("request_id", new_request_id())
    token = _current.set(RequestContext(**values))  # type: ignore[arg-type]
    try:
        yield _current.get()
    finally:
        _current.reset(token)


def enter(**values: object) -> Token[RequestContext]:
    """Start a fresh context where a ``with bind()`` block does not fit (e.g. Celery's
    task_prerun/task_postrun signals); pass the token to ``leave``."""
    values.setdefault("request_id", new_request_id())
    return _current.set(RequestContext(**values))  # type: ignore[arg-type]


def leave(token: Token[RequestContext]) -> None:
    with contextlib.suppress(ValueError, RuntimeError):  # token from another thread/context: nothing to restore
        _current.reset(token)


def new_request_id() -> str:
    return uuid.uuid4().hex
