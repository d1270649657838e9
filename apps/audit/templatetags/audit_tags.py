"""Template filters for audit pages."""

from __future__ import annotations

import json
from typing import Any

from django import template

register = template.Library()


@register.filter
def pretty_json(value: Any) -> str:
    """Indented JSON for the metadata panel (autoescaped by the template)."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)


@register.filter
def hexdigest(value: Any) -> str:
    """A stored hash (bytes or memoryview) as lowercase hex."""
    if value is None:
        return ""
    return bytes(value).hex()
