"""Writing decision-log rows that are not part of a caller's transaction.

A denial decided inside a transaction (a console write) is saved in it: its
commit decides. A denial decided on its own (a runtime API call, a page read)
is a record of a refusal, not security state, so it is written off the
request path: rows wait in a per-process buffer for at most
``settings.ACCESS_DENIAL_LOG_FLUSH_MS`` and a writer thread stores each batch
in one round trip (``BEGIN; SET LOCAL synchronous_commit TO OFF; INSERT …
VALUES (…), (…); COMMIT`` — Django's psycopg cursors bind client-side, so one
execute may carry several statements). Measured on the runtime API, writing
each denial on the request path cost a quarter of ``/authorize``'s
throughput (benchmarks/bench_api.py).

What a crash can lose: the rows of the last flush interval (a process killed
outright) or of the last fraction of a second (a database crash, because of
``synchronous_commit = off``); rows are never duplicated or corrupted. A clean
shutdown flushes (``atexit``). ``ACCESS_DENIAL_LOG_FLUSH_MS = 0`` writes each
row at once on the caller's thread (the test settings do, so tests see rows
immediately).
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.db import connection

from apps.access.models import DeniedDecision

logger = logging.getLogger(__name__)

# The columns a row is written with (``id`` and ``occurred_at`` come from the database).
COLUMNS = (
    "tenant_id",
    "subject_type",
    "subject_id",
    "subject_display",
    "action",
    "resource_type",
    "resource_id",
    "reasons",
    "request_id",
)
MAX_BUFFERED = 10_000  # a stalled database must not grow a web process without bound


def values_of(row: DeniedDecision) -> tuple[Any, ...]:
    return tuple(json.dumps(row.reasons) if name == "reasons" else getattr(row, name) for name in COLUMNS)


def _insert(rows: Sequence[tuple[Any, ...]]) -> None:
    one = "(" + ", ".join(["%s"] * len(COLUMNS)) + ")"
    with connection.cursor() as cursor:
        cursor.execute(
            f"BEGIN; SET LOCAL synchronous_commit TO OFF; INSERT INTO {DeniedDecision._meta.db_table} "
            f"({', '.join(COLUMNS)}) VALUES {', '.join([one] * len(rows))}; COMMIT",
            [value for row in rows for value in row],
        )


class _Buffer:
    """Rows waiting for the writer thread of this process (a fork starts with an empty buffer)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[tuple[Any, ...]] = []
        self._writer: threading.Thread | None = None
        self._pid = os.getpid()

    def add(self, row: tuple[Any, ...], delay: float) -> None:
        with self._lock:
            if self._pid != os.getpid():  # forked after rows were added: they belong to the parent
                self._rows, self._writer, self._pid = [], None, os.getpid()
            if len(self._rows) >= MAX_BUFFERED:
                logger.error("decision log buffer full; a denial row was dropped")
                return
            self._rows.append(row)
            if self._writer is None:
                self._writer = threading.Thread(target=self._run, args=(delay,), name="denial-log", daemon=True)
                self._writer.start()

    def _take(self) -> list[tuple[Any, ...]]:
        with self._lock:
            rows, self._rows = self._rows, []
            if not rows:
                self._writer = None  # decided under the lock: the next add starts a new writer
            return rows

    def _run(self, delay: float) -> None:
        try:
            while True:
                time.sleep(delay)
                rows = self._take()
                if not rows:
                    return
                _write_logged(rows)
        finally:
            connection.close()  # this thread's own connection

    def flush(self) -> None:
        """Write what is waiting now, on the calling thread."""
        with self._lock:
            rows, self._rows = self._rows, []
        if rows:
            _write_logged(rows)


def _write_logged(rows: list[tuple[Any, ...]]) -> None:
    try:
        _insert(rows)
    except Exception:  # a logging path must never take a request or the writer down
        logger.exception("could not write %d decision-log rows", len(rows))


_buffer = _Buffer()
atexit.register(_buffer.flush)


def write(row: DeniedDecision) -> None:
    """Store ``row`` outside any transaction: buffered, or at once when the flush interval is 0."""
    delay = float(getattr(settings, "ACCESS_DENIAL_LOG_FLUSH_MS", 200)) / 1000
    if delay <= 0:
        _insert([values_of(row)])
        return
    _buffer.add(values_of(row), delay)


def flush() -> None:
    """Write the rows this process holds (tests; a process about to stop)."""
    _buffer.flush()
