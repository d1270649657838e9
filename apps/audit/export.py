"""Audit exports: CSV and JSON Lines encoders that stream, and the response that carries them.

Values were masked when they were recorded; the encoders only make them safe
for the file format. CSV cells that a spreadsheet would run as a formula
(starting with = + - @, tab or carriage return) are prefixed with a quote.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from django.http import StreamingHttpResponse

from apps.audit.selectors import EXPORT_COLUMNS

FORMATS = {"csv": "text/csv; charset=utf-8", "jsonl": "application/x-ndjson; charset=utf-8"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_ROWS_PER_CHUNK = 200  # rows encoded per yielded chunk: fewer, larger writes to the socket


class _Line:
    """A write-only file that hands back what csv.writer wrote."""

    def write(self, value: str) -> str:
        return value


def safe_cell(value: Any) -> Any:
    """Neutralise a CSV cell a spreadsheet would evaluate as a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A row with every value as its export text/JSON value."""
    out = {}
    for column in EXPORT_COLUMNS:
        value = row.get(column)
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        elif isinstance(value, bytes | memoryview):
            value = bytes(value).hex()
        elif value is not None and column == "ip":
            value = str(value)
        out[column] = value
    return out


def _batched(lines: Iterable[str]) -> Iterator[str]:
    """Join ``lines`` into chunks of _ROWS_PER_CHUNK lines."""
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= _ROWS_PER_CHUNK:
            yield "".join(chunk)
            chunk = []
    if chunk:
        yield "".join(chunk)


def _csv_lines(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Line())
    yield writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        plain = _plain(row)
        plain["metadata"] = json.dumps(plain["metadata"], ensure_ascii=False, sort_keys=True)
        yield writer.writerow([safe_cell("" if plain[c] is None else plain[c]) for c in EXPORT_COLUMNS])


def csv_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """A header line, then the rows as CSV (metadata as a JSON cell), formula-safe."""
    return _batched(_csv_lines(rows))


def jsonl_chunks(rows: Iterable[dict[str, Any]]) -> Iterator[str]:
    """One JSON object per line."""
    return _batched(json.dumps(_plain(row), ensure_ascii=False, sort_keys=True) + "\n" for row in rows)


def _closing(chunks: Iterator[str], rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    # Close the row iterator (and its transaction) even if the client goes away mid-download.
    try:
        yield from chunks
    finally:
        close = getattr(rows, "close", None)
        if close is not None:
            close()


def streaming_response(rows: Iterator[dict[str, Any]], *, fmt: str, name: str) -> StreamingHttpResponse:
    """A download of ``rows`` in ``fmt`` ("csv" or "jsonl") named ``audit-<name>-<UTC time>.<fmt>``."""
    chunks = csv_chunks(rows) if fmt == "csv" else jsonl_chunks(rows)
    response = StreamingHttpResponse(_closing(chunks, rows), content_type=FORMATS[fmt])
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-{name}-{stamp}.{fmt}"'
    response["Cache-Control"] = "no-store"
    return response
