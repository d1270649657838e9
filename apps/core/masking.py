"""Masking of secrets and payment data before anything is stored or logged.

Pure functions with no Django imports, on the ground floor (``core``) so that
everything above can share them: the audit service (through the audit
app's ``redaction`` module), the JSON log formatter and exports all use the
same rules.

Rules:
- a value under a key whose name looks secret (password, secret, token,
  authorization, api key, cookie, credential, private key, card number, cvc)
  is replaced whole;
- inside free text: bearer/basic credentials, JWTs, well-known API-key shapes
  (``sk_live_…``, ``whsec_…``, ``AKIA…``, ``ghp_…``, ``xoxb-…``), ``key=value``
  pairs with a secret-looking key, and card numbers (13–19 digits passing the
  Luhn check; the last four digits stay visible).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "[MASKED]"
MAX_DEPTH = 8

_SECRET_KEY_RE = re.compile(
    r"pass(word|wd|phrase)?|secret|token|authori[sz]ation|api[-_]?key|apikey|cookie|credential|"
    r"private[-_]?key|signature|card[-_]?(number|no)|^pan$|cvc|cvv|^otp$|session[-_]?key",
    re.IGNORECASE,
)

_TEXT_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization header values.
    (re.compile(r"\b(Bearer|Basic|Token)\s+[A-Za-z0-9._~+/=-]{8,}", re.IGNORECASE), r"\1 " + MASK),
    # JSON Web Tokens (three base64url segments, the first two starting with '{"').
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
    # Provider key shapes: Stripe, webhook secrets, OpenAI/Anthropic, AWS, GitHub, Slack.
    (re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]{8,}"), MASK),
    (re.compile(r"\bwhsec_[A-Za-z0-9]{8,}"), MASK),
    (re.compile(r"\bsk-(ant-|proj-)?[A-Za-z0-9_-]{16,}"), MASK),
    (re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"), MASK),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"\bxox[abpors]-[A-Za-z0-9-]{10,}"), MASK),
    # key=value or "key": "value" pairs whose key looks secret. The key may only
    # start where a word starts, and its prefix is bounded: an unanchored
    # ``[\w-]*`` made long words quadratic (20 kB of letters took 15 s).
    (
        re.compile(
            r"""(?P<k>(?<![\w-])["']?[\w-]{0,64}?(?:password|passwd|secret|token|api[-_]?key|apikey|authorization)"""
            r"""["']?\s*[:=]\s*)"""
            r"""(?P<q>["']?)(?P<v>[^\s"'&,;}]+)""",
            re.IGNORECASE,
        ),
        r"\g<k>\g<q>" + MASK,
    ),
]

# 13 to 19 digits, optionally grouped by single spaces or dashes.
_PAN_RE = re.compile(r"(?<![\d.,-])(?:\d[ -]?){12,18}\d(?![\d-]|[.,]\d)")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _mask_pan(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    if not 13 <= len(digits) <= 19 or not _luhn_ok(digits):
        return match.group(0)
    return f"[PAN ****{digits[-4:]}]"


def is_secret_key(key: str) -> bool:
    """True if a mapping key names something that must never be stored."""
    return bool(_SECRET_KEY_RE.search(key))


def mask_text(text: str) -> str:
    """Mask credentials and card numbers inside free text."""
    for pattern, replacement in _TEXT_PATTERNS:
        text = pattern.sub(replacement, text)
    return _PAN_RE.sub(_mask_pan, text)


def mask_value(key: str | None, value: Any, _depth: int = 0) -> Any:
    """Mask ``value`` found under ``key``; recurse into mappings and sequences."""
    if key is not None and is_secret_key(str(key)) and value not in (None, "", [], {}):
        return MASK
    if _depth >= MAX_DEPTH:
        return MASK if isinstance(value, (Mapping, list, tuple)) else value
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, Mapping):
        return {str(k): mask_value(str(k), v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_value(None, item, _depth + 1) for item in value]
    return value


def mask_mapping(data: Mapping[str, Any] | None) -> dict[str, Any]:
    """Mask a whole metadata mapping (top-level keys included)."""
    if not data:
        return {}
    return {str(k): mask_value(str(k), v) for k, v in data.items()}
