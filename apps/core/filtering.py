"""Filter forms of the keyset-paginated lists: the cursor, the date range and the query string.

Every value of such a list arrives in the query string, so it is validated in a
form and a bad value becomes a form error (status 400), never a 500. The audit
log and the denied-checks page share what their filters have in common:

- ``cursor``: a hidden field that must decode (``apps/core/pagination.py``);
- ``date_from`` / ``date_to``: a date (a form's ``DateField``) or a date or
  date-time typed as text (a ``CharField``); both clean to aware datetimes,
  ``date_from`` the inclusive lower bound and ``date_to`` the exclusive upper
  bound (a date covers its whole day), and "To" may not lie before "From";
- ``query_string()``: the submitted filters for the pager and export links,
  never the old cursor.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.core.pagination import InvalidCursorError, decode_cursor

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_moment(text: str) -> tuple[datetime, bool]:
    """Parse a date or an ISO date-time; returns (aware datetime, whether only a date was given).

    A date is midnight UTC; a naive time is taken in the current time zone (UTC
    by default). Raises ValidationError with a message for the user.
    """
    text = text.strip()
    try:
        if _DATE_RE.match(text):
            return _midnight(date.fromisoformat(text)), True
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(
            f"“{text[:40]}” is not a date or time: use YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC).", code="invalid"
        ) from None
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment, False


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _as_moment(value: str | date) -> tuple[datetime, bool]:
    if isinstance(value, datetime):
        return value, False
    if isinstance(value, date):
        return _midnight(value), True
    return parse_moment(value)


def range_start(value: str | date | None) -> datetime | None:
    """The inclusive lower bound a "From" value stands for (None when it is empty)."""
    return _as_moment(value)[0] if value else None


def range_end(value: str | date | None) -> datetime | None:
    """The exclusive upper bound a "To" value stands for.

    The next midnight for a date (it covers its whole day), the next microsecond for a time.
    """
    if not value:
        return None
    moment, date_only = _as_moment(value)
    try:
        return moment + (timedelta(days=1) if date_only else timedelta(microseconds=1))
    except OverflowError:
        raise ValidationError("That date is out of range.", code="invalid") from None


class KeysetFilterForm(forms.Form):
    """Base of a keyset-paginated list's filter form.

    Subclasses declare their filter fields (``date_from`` / ``date_to`` if the
    list filters by time) and list them in ``filter_fields``; ``query_fields``
    names other fields the links keep (a page size).
    """

    cursor = forms.CharField(max_length=200, required=False, widget=forms.HiddenInput)

    filter_fields: ClassVar[tuple[str, ...]] = ()
    query_fields: ClassVar[tuple[str, ...]] = ()
    invalid_cursor_message: ClassVar[str] = "This page link is invalid. Start again from the newest entries."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The cursor comes last, after the subclass's filters (error lists follow field order).
        self.fields["cursor"] = self.fields.pop("cursor")

    def clean_cursor(self) -> str:
        cursor = self.cleaned_data["cursor"]
        if cursor:
            try:
                decode_cursor(cursor)
            except InvalidCursorError:
                raise ValidationError(self.invalid_cursor_message, code="invalid") from None
        return cursor

    def clean_date_from(self) -> datetime | None:
        return range_start(self.cleaned_data["date_from"])

    def clean_date_to(self) -> datetime | None:
        return range_end(self.cleaned_data["date_to"])

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        # Both are bounds by now (end exclusive), so an equal pair is an empty range too.
        if start is not None and end is not None and start >= end:
            self.add_error("date_to", "“To” must not be before “From”.")
        return data

    def query_string(self, **extra: str) -> str:
        """The submitted filters as a query string, plus ``extra``; never the old cursor."""
        names = (*self.filter_fields, *self.query_fields)
        params = [(name, str(self.data.get(name, "")).strip()) for name in names if name in self.fields]
        params += list(extra.items())
        return urlencode([(name, value) for name, value in params if value])
