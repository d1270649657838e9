"""A short-lived, per-process cache of the rows a decision reads, so a warm call makes no query.

``/authorize`` is asked thousands of times a second with the same few subjects
and resources. Each entry (the member a question is about, a dataset or tool
row) is kept for ``settings.API_HOT_CACHE_SECONDS`` (default 2 s) and then read
again. Access changes (roles, bindings, grants, a member's role) do not wait
for that: member entries are keyed by the tenant's published access version
(``TokenContext.access_version``), so they are read afresh on the next call
after such a change commits. The TTL bounds only what the access version does
not cover: a dataset's or tool's own row (a reclassification). 0 turns the
cache off (every call reads its rows). Entries are plain model instances
that this process alone holds; nothing is shared, so there is nothing to
invalidate across processes beyond the expiry.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

from django.conf import settings

T = TypeVar("T")
MAX_ENTRIES = 10_000
_MISSING = object()
_entries: OrderedDict[tuple[Any, ...], tuple[float, Any]] = OrderedDict()


def get_or_load(key: tuple[Any, ...], load: Callable[[], T]) -> T:
    """The cached value of ``key`` if younger than the TTL, else ``load()`` (a miss is cached too)."""
    ttl = float(settings.API_HOT_CACHE_SECONDS)
    if ttl <= 0:
        return load()
    now = time.monotonic()
    hit = _entries.get(key, _MISSING)
    if hit is not _MISSING and hit[0] > now:  # type: ignore[index]
        return hit[1]  # type: ignore[index]
    value = load()
    _entries[key] = (now + ttl, value)
    _entries.move_to_end(key)
    while len(_entries) > MAX_ENTRIES:
        _entries.popitem(last=False)
    return value


def clear() -> None:
    """Forget everything (tests; a process that must see a change at once)."""
    _entries.clear()
