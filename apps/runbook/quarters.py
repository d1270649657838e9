"""Calendar quarters in UTC: "2026-Q4" starts on 1 October 2026 and ends (exclusive) on 1 January 2027."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time


@dataclass(frozen=True, slots=True)
class Quarter:
    """A calendar quarter: its label and its first day, and the next quarter's first day."""

    label: str
    start: date
    end: date

    @property
    def start_at(self) -> datetime:
        return datetime.combine(self.start, time.min, tzinfo=UTC)

    @property
    def end_at(self) -> datetime:
        return datetime.combine(self.end, time.min, tzinfo=UTC)

    def previous(self) -> Quarter:
        return quarter_of(date.fromordinal(self.start.toordinal() - 1))


def quarter_of(day: date | datetime) -> Quarter:
    """The quarter ``day`` falls in (a datetime is taken in UTC)."""
    if isinstance(day, datetime):
        day = day.astimezone(UTC).date()
    index = (day.month - 1) // 3
    start = date(day.year, index * 3 + 1, 1)
    end = date(day.year + 1, 1, 1) if index == 3 else date(day.year, index * 3 + 4, 1)
    return Quarter(label=f"{day.year}-Q{index + 1}", start=start, end=end)
