"""Small view helpers every face shares."""

from __future__ import annotations

from typing import TypeVar

from django.http import Http404

T = TypeVar("T")


def found_or_404(obj: T | None, message: str = "Not found") -> T:
    """``obj``, or a 404 when the selector found nothing.

    Selectors answer None both for a row that does not exist and for one outside
    the caller's tenant or rights, so the two look the same from outside.
    """
    if obj is None:
        raise Http404(message)
    return obj
