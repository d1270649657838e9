"""Adyen standard notifications for the tests: the documented shape, signed with our reference HMAC."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from django.test import Client

from apps.billing.providers.adyen import sign

URL = "/billing/webhooks/adyen/"
HMAC_KEY = "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"  # Adyen's documented sample key
OLD_HMAC_KEY = "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00"

# An AUTHORISATION item as Adyen's webhook documentation shows it (card payment, test platform).
_ITEM: dict[str, Any] = {
    "additionalData": {
        "authCode": "058705",
        "cardSummary": "1111",
        "expiryDate": "03/2030",
        "paymentMethodVariant": "visa",
        "checkoutSessionId": "CSF46729982237A879",
    },
    "amount": {"currency": "EUR", "value": 1130},
    "eventCode": "AUTHORISATION",
    "eventDate": "2026-12-06T11:00:00+01:00",
    "merchantAccountCode": "BastionECOM",
    "merchantReference": "bastion-1-inv-0001",
    "operations": ["CANCEL", "CAPTURE", "REFUND"],
    "paymentMethod": "visa",
    "pspReference": "7914073381342284",
    "reason": "058705:1111:03/2030",
    "success": "true",
}


def item(
    *,
    tenant_id: int | None = None,
    psp: str | None = None,
    event_code: str = "AUTHORISATION",
    success: str = "true",
    when: datetime | None = None,
    key: str | None = HMAC_KEY,
    **changes: Any,
) -> dict[str, Any]:
    """A signed NotificationRequestItem wrapper; ``key=None`` leaves it unsigned."""
    body = copy.deepcopy(_ITEM)
    body.update(
        pspReference=psp or f"{uuid.uuid4().int % 10**16:016d}",
        eventCode=event_code,
        success=success,
        eventDate=(when or datetime.now(UTC)).isoformat(timespec="seconds"),
    )
    body.update(changes)
    if tenant_id is not None:
        body["merchantReference"] = f"bastion-{tenant_id}-inv-{uuid.uuid4().hex[:8]}"
    if key is not None:
        body["additionalData"]["hmacSignature"] = sign(body, key)
    return {"NotificationRequestItem": body}


def notification(*items: dict[str, Any], live: str = "false") -> str:
    return json.dumps({"live": live, "notificationItems": list(items)})


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def post(client: Client, body: str | bytes, **headers: str):
    return client.post(URL, data=body, content_type="application/json", **headers)
