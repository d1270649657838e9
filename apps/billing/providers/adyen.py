"""Adyen standard notifications behind the provider interface.

A delivery is JSON ``{"live": "false", "notificationItems": [{"NotificationRequestItem": {…}}]}``.
Each item carries its own HMAC-SHA256 signature in ``additionalData.hmacSignature``:
base64 of HMAC-SHA256, keyed with the hex-decoded HMAC key from the Customer Area, over
the signing string

    pspReference:originalReference:merchantAccountCode:merchantReference:value:currency:eventCode:success

(``value`` and ``currency`` from ``amount``; a missing field is the empty string; no escaping),
as Adyen's own libraries compute it. Every item must verify against one of ``ADYEN_HMAC_KEYS``
(several during a key rotation) or the whole delivery is refused and nothing is stored.
Basic auth, when ``ADYEN_BASIC_AUTH`` is set, is checked first. Adyen expects the reply
``[accepted]``.

Adyen signs no timestamp, so a replayed item is recognised by its event id alone:
``pspReference:eventCode:success`` (Adyen's own duplicate key), unique in the inbox.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from datetime import datetime
from typing import Any

from apps.billing import conf
from apps.billing.errors import WebhookRejectedError
from apps.billing.providers import adyen_handlers
from apps.billing.providers.base import Ack, Handler, InboxEntry, Provider, WebhookRequest

SIGNED_FIELDS = (
    "pspReference",
    "originalReference",
    "merchantAccountCode",
    "merchantReference",
    "value",
    "currency",
    "eventCode",
    "success",
)
# Adyen batches at most a few items per delivery; a cap keeps one request's work bounded.
MAX_ITEMS = 100
_EVENT_CODE_RE = re.compile(r"^[A-Z0-9_]{1,60}$")


def signing_string(item: dict[str, Any]) -> str:
    """The string Adyen signs for a standard notification item (see the module docstring)."""
    amount = item.get("amount") if isinstance(item.get("amount"), dict) else {}
    values = {**item, "value": amount.get("value", ""), "currency": amount.get("currency", "")}
    return ":".join("" if values.get(field) is None else str(values.get(field)) for field in SIGNED_FIELDS)


def sign(item: dict[str, Any], hex_key: str) -> str:
    """The base64 HMAC-SHA256 of the item's signing string under a hex key (also used by the tests)."""
    digest = hmac.new(binascii.unhexlify(hex_key), signing_string(item).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def _keys() -> list[bytes]:
    keys = []
    for hex_key in conf.adyen_hmac_keys():
        try:
            keys.append(binascii.unhexlify(hex_key))
        except (binascii.Error, ValueError) as exc:
            # Never echo the key: the reason names only its position.
            raise WebhookRejectedError(f"ADYEN_HMAC_KEYS entry {len(keys) + 1} is not hex") from exc
    if not keys:
        raise WebhookRejectedError("no Adyen HMAC key configured")
    return keys


def _basic_auth_ok(header: str | None) -> bool:
    expected = conf.adyen_basic_auth()
    if not expected:
        return True
    if not header or not header.startswith("Basic "):
        return False
    try:
        given = base64.b64decode(header[6:].strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(given, expected.encode("utf-8"))


def _created(item: dict[str, Any]) -> int:
    raw = item.get("eventDate")
    if raw is None:
        return int(time.time())  # Adyen always sends it; its documented samples sometimes leave it out
    if not isinstance(raw, str):
        raise WebhookRejectedError("malformed eventDate")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError as exc:
        raise WebhookRejectedError("malformed eventDate") from exc
    if moment.tzinfo is None:
        raise WebhookRejectedError("malformed eventDate")
    return int(moment.timestamp())


def _item(wrapper: Any, keys: list[bytes], live: str) -> InboxEntry:
    item = wrapper.get("NotificationRequestItem") if isinstance(wrapper, dict) else None
    if not isinstance(item, dict):
        raise WebhookRejectedError("malformed notification item")
    additional = item.get("additionalData")
    given = additional.get("hmacSignature") if isinstance(additional, dict) else None
    if not isinstance(given, str) or not given:
        raise WebhookRejectedError("unsigned notification item")
    message = signing_string(item).encode("utf-8")
    if not any(
        hmac.compare_digest(base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode(), given)
        for key in keys
    ):
        raise WebhookRejectedError("signature: no HMAC key matches")
    psp, code, success = item.get("pspReference"), item.get("eventCode"), item.get("success")
    if not (isinstance(psp, str) and 0 < len(psp) <= 64):
        raise WebhookRejectedError("malformed pspReference")
    if not (isinstance(code, str) and _EVENT_CODE_RE.match(code)):
        raise WebhookRejectedError("malformed eventCode")
    if success not in ("true", "false"):
        raise WebhookRejectedError("malformed success")
    payload = json.dumps({"live": live, "NotificationRequestItem": item}, separators=(",", ":"))
    return InboxEntry(AdyenProvider.name, f"{psp}:{code}:{success}", code, payload, _created(item))


class AdyenProvider(Provider):
    name = "adyen"
    ack = Ack("[accepted]")

    def verify(self, request: WebhookRequest) -> list[InboxEntry]:
        if not _basic_auth_ok(request.headers.get("Authorization")):
            raise WebhookRejectedError("basic auth")
        keys = _keys()
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            # Parsed before any signature can be checked (it is inside): a deeply nested body from
            # anyone must be a 400, not a 500.
            raise WebhookRejectedError("malformed JSON") from exc
        items = body.get("notificationItems") if isinstance(body, dict) else None
        if not isinstance(items, list) or not 0 < len(items) <= MAX_ITEMS:
            raise WebhookRejectedError("malformed notificationItems")
        # Test and live send with different HMAC keys, so a test event cannot verify on a live endpoint.
        live = str(body.get("live", ""))
        entries = [_item(wrapper, keys, live) for wrapper in items]
        # Duplicates inside one batch collapse to one entry (the inbox would drop them anyway).
        return list({entry.event_id: entry for entry in entries}.values())

    def handler(self, event_type: str) -> Handler | None:
        return adyen_handlers.HANDLERS.get(event_type)
