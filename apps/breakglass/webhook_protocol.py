"""Incident webhook protocol: signature headers, the 5-minute window and the two payload shapes.

Pure functions over the raw body and headers (no database): ``verify`` says
whether a delivery is authentic and fresh and what it asks for, or raises
``WebhookRejectedError`` with a short reason for the audit log.

Two senders are understood:

- **Bastion's generic form.** Body ``{"incident": "INC-123", "status": "resolved"}``;
  headers ``X-Bastion-Timestamp: <unix seconds>`` and
  ``X-Bastion-Signature: v1=<hex>`` where the hex is
  HMAC-SHA256(secret, f"{timestamp}.".encode() + body). Several ``v1=``
  entries (comma-separated) are allowed, so a sender can sign with the old
  and the new secret during a rotation. The replay key is the signature.
- **PagerDuty v3 webhooks.** ``X-PagerDuty-Signature: v1=<hex>[,v1=<hex>]``,
  HMAC-SHA256(secret, body): PagerDuty signs the body only, so the freshness
  check uses the event's ``occurred_at`` and the replay key is the event's
  ``id`` (a PagerDuty redelivery carries the same id). ``event.event_type``
  ``incident.resolved`` closes the incident named by ``event.data`` (its id,
  number or URL, whichever the requester typed).

Comparisons are constant-time (``hmac.compare_digest``); at most
``MAX_SIGNATURES`` entries of a header are tried, so a header stuffed with
thousands of entries costs no more than a normal one.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

TOLERANCE = timedelta(minutes=5)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
MAX_SIGNATURES = 8
MAX_REF = 100
GENERIC_CLOSING = frozenset({"resolved", "closed"})
PAGERDUTY_CLOSING = frozenset({"incident.resolved"})


class WebhookRejectedError(ValueError):
    """The delivery is refused (400); ``reason`` is short and safe to audit."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Delivery:
    """A verified delivery: which sender, its replay key, and the incident it closes (refs empty: nothing to do)."""

    source: str  # "generic" or "pagerduty"
    replay_key: str
    refs: tuple[str, ...]
    label: str  # the incident as shown in the console and the audit log
    event: str  # the status or event type, for the audit log


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The header value a sender puts in ``X-Bastion-Signature`` (``timestamp``) or ``X-PagerDuty-Signature`` (None)."""
    message = body if timestamp is None else f"{timestamp}.".encode() + body
    return "v1=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def _signatures(header: str | None) -> list[str]:
    if not header or len(header) > 2000:
        raise WebhookRejectedError("unsigned")
    found = []
    for part in header.replace(" ", ",").split(","):
        scheme, _, value = part.strip().partition("=")
        # Only well-formed entries are compared (compare_digest refuses non-ASCII text).
        if scheme == "v1" and _HEX64.match(value):
            found.append(value.lower())
    if not found:
        raise WebhookRejectedError("no v1 signature")
    return found[:MAX_SIGNATURES]


def _match(secrets: list[str], message: bytes, header: str | None) -> str:
    """The signature in ``header`` one of ``secrets`` made over ``message``; raises if none did."""
    offered = _signatures(header)
    matched = ""
    for secret in secrets:
        expected = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
        for candidate in offered:
            # No early exit: the time taken does not tell which secret or entry matched.
            if hmac.compare_digest(expected, candidate):
                matched = expected
    if not matched:
        raise WebhookRejectedError("bad signature")
    return matched


def _fresh(moment: datetime, now: datetime) -> None:
    if abs(now - moment) > TOLERANCE:
        raise WebhookRejectedError("timestamp outside the 5-minute window")


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WebhookRejectedError("malformed JSON") from None
    if not isinstance(data, dict):
        raise WebhookRejectedError("malformed JSON: not an object")
    return data


def _ref(value: Any) -> str:
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return text if 0 < len(text) <= MAX_REF else ""


def verify(*, body: bytes, headers: dict[str, str], secrets: list[str], now: datetime) -> Delivery:
    """Check a delivery against the tenant's ``secrets`` (current first); returns what it asks for.

    Raises WebhookRejectedError: unsigned, bad signature, stale or future timestamp,
    malformed JSON or payload. Nothing here touches the database.
    """
    if "X-PagerDuty-Signature" in headers:
        return _pagerduty(body, headers["X-PagerDuty-Signature"], secrets, now)
    return _generic(body, headers, secrets, now)


def _generic(body: bytes, headers: dict[str, str], secrets: list[str], now: datetime) -> Delivery:
    stamp = (headers.get("X-Bastion-Timestamp") or "").strip()
    if not (stamp.isdigit() and len(stamp) <= 12):
        raise WebhookRejectedError("missing or malformed X-Bastion-Timestamp")
    signature = _match(secrets, f"{stamp}.".encode() + body, headers.get("X-Bastion-Signature"))
    try:
        moment = datetime.fromtimestamp(int(stamp), tz=now.tzinfo)
    except (OverflowError, OSError, ValueError):
        raise WebhookRejectedError("timestamp outside the 5-minute window") from None
    _fresh(moment, now)
    data = _json(body)
    ref, status = _ref(data.get("incident")), data.get("status")
    if not ref:
        raise WebhookRejectedError("payload needs an incident reference (1-100 characters)")
    if not isinstance(status, str) or not 0 < len(status) <= 40:
        raise WebhookRejectedError("payload needs a status")
    closing = status.strip().lower() in GENERIC_CLOSING
    return Delivery("generic", f"v1:{signature}", (ref,) if closing else (), ref, status.strip().lower())


def _pagerduty(body: bytes, header: str, secrets: list[str], now: datetime) -> Delivery:
    _match(secrets, body, header)
    event = _json(body).get("event")
    if not isinstance(event, dict):
        raise WebhookRejectedError("malformed PagerDuty payload: no event")
    event_id, event_type, occurred = event.get("id"), event.get("event_type"), event.get("occurred_at")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 150):
        raise WebhookRejectedError("malformed PagerDuty payload: event id")
    if not (isinstance(event_type, str) and 0 < len(event_type) <= 100):
        raise WebhookRejectedError("malformed PagerDuty payload: event type")
    try:
        moment = datetime.fromisoformat(str(occurred).replace("Z", "+00:00"))
    except ValueError:
        raise WebhookRejectedError("malformed PagerDuty payload: occurred_at") from None
    if moment.tzinfo is None:
        raise WebhookRejectedError("malformed PagerDuty payload: occurred_at without a time zone")
    _fresh(moment, now)
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    number = _ref(data.get("number"))
    candidates = (_ref(data.get("id")), number, f"#{number}" if number else "", _ref(data.get("html_url")))
    refs = tuple(r for r in candidates if r)
    if event_type in PAGERDUTY_CLOSING and not refs:
        raise WebhookRejectedError("malformed PagerDuty payload: incident without an id")
    label = _ref(data.get("id")) or event_id[:MAX_REF]
    return Delivery("pagerduty", f"pd:{event_id}", refs if event_type in PAGERDUTY_CLOSING else (), label, event_type)
