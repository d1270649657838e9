"""The shared filter-form base: cursor check, date range bounds and the query string."""

from __future__ import annotations

from datetime import UTC, datetime

from django import forms

from apps.core.filtering import KeysetFilterForm
from apps.core.pagination import encode_cursor


class DayForm(KeysetFilterForm):
    date_from = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    date_to = forms.DateField(required=False, input_formats=["%Y-%m-%d"])
    filter_fields = ("date_from", "date_to")


class MomentForm(KeysetFilterForm):
    q = forms.CharField(required=False)
    date_from = forms.CharField(required=False)
    date_to = forms.CharField(required=False)
    filter_fields = ("q", "date_from", "date_to")


def test_dates_become_bounds_with_the_to_day_included():
    form = DayForm({"date_from": "2026-03-01", "date_to": "2026-03-01"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["date_from"] == datetime(2026, 3, 1, tzinfo=UTC)
    assert form.cleaned_data["date_to"] == datetime(2026, 3, 2, tzinfo=UTC)


def test_text_dates_and_times_become_the_same_bounds():
    form = MomentForm({"date_from": "2026-03-01", "date_to": "2026-03-01T10:00"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["date_from"] == datetime(2026, 3, 1, tzinfo=UTC)
    assert form.cleaned_data["date_to"] == datetime(2026, 3, 1, 10, 0, 0, 1, tzinfo=UTC)


def test_to_before_from_and_out_of_range_are_form_errors():
    assert "must not be before" in str(DayForm({"date_from": "2026-03-02", "date_to": "2026-03-01"}).errors)
    assert "out of range" in str(DayForm({"date_to": "9999-12-31"}).errors)
    assert "not a date or time" in str(MomentForm({"date_from": "yesterday"}).errors)


def test_cursor_must_decode_and_never_enters_the_query_string():
    assert "page link is invalid" in str(MomentForm({"cursor": "garbage!"}).errors)
    cursor = encode_cursor(datetime(2026, 3, 1, tzinfo=UTC), 7)
    form = MomentForm({"q": " x ", "date_from": "2026-03-01", "cursor": cursor})
    assert form.is_valid(), form.errors
    assert form.query_string() == "q=x&date_from=2026-03-01"
    assert form.query_string(cursor="abc") == "q=x&date_from=2026-03-01&cursor=abc"
    assert list(form.fields)[-1] == "cursor"
