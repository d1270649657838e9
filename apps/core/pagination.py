"""Keyset (cursor) pagination: constant cost per page, no COUNT(*) over the table.

Pages are ordered by (timestamp, id) descending. The cursor is the last row's
key, URL-safe base64 encoded; a cursor that does not decode is a client error.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet


class InvalidCursorError(ValueError):
    """The cursor parameter is not one this server issued."""


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Any]
    next_cursor: str | None


def encode_cursor(moment: datetime, pk: int) -> str:
    raw = f"{moment.isoformat()}|{pk}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    if len(cursor) > 200:
        raise InvalidCursorError("cursor too long")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        moment_text, pk_text = raw.split("|", 1)
        moment = datetime.fromisoformat(moment_text)
        pk = int(pk_text)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidCursorError("malformed cursor") from exc
    if moment.tzinfo is None or pk < 0:
        raise InvalidCursorError("malformed cursor")
    return moment, pk


def within(qs: QuerySet, *, start: datetime | None, end: datetime | None, field: str = "occurred_at") -> QuerySet:
    """Rows with ``start <= field < end`` (the bounds a filter form's date range cleans to); None is open."""
    if start is not None:
        qs = qs.filter(**{f"{field}__gte": start})
    if end is not None:
        qs = qs.filter(**{f"{field}__lt": end})
    return qs


def keyset_page(qs: QuerySet, *, cursor: str | None, size: int, time_field: str = "occurred_at") -> Page:
    """One page of ``qs`` newest first, after ``cursor``; fetches size + 1 rows to know if more exist."""
    qs = qs.order_by(f"-{time_field}", "-pk")
    if cursor:
        moment, pk = decode_cursor(cursor)
        # The redundant "<=" bound lets PostgreSQL start an index range scan at
        # the cursor instead of filtering the OR row by row.
        qs = qs.filter(**{f"{time_field}__lte": moment}).filter(
            Q(**{f"{time_field}__lt": moment}) | Q(**{time_field: moment, "pk__lt": pk})
        )
    rows = list(qs[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    next_cursor = encode_cursor(getattr(rows[-1], time_field), rows[-1].pk) if more and rows else None
    return Page(rows=rows, next_cursor=next_cursor)
