"""A short-lived, per-process cache of the rows a decision reads, so a warm call makes no query.

``/authorize`` is asked thousands of times a second with the same few subjects
and resources. Every entry (the member a question is about, a dataset or tool
row) is keyed by the tenant's published access version
(``TokenContext.access_version``), which every access change (roles, bindings,
grants, a member's role) and every catalog write (a reclassification, a
deleted tool) moves in its own transaction: the next call after such a change
commits reads afresh. ``settings.API_HOT_CACHE_SECONDS`` (default 2 s) only
bounds how long an entry lives in memory; 0 turns the cache off (every call
reads its rows). Entries are plain model instances that this process alone
holds; nothing is shared.
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
