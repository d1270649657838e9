"""Building incident webhook deliveries the way senders do (Bastion's generic form and PagerDuty v3)."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from django.test import Client


def generic_body(incident: str = "INC-123", status: str = "resolved") -> bytes:
    return json.dumps({"incident": incident, "status": status}).encode()


def generic_headers(secret: str | list[str], body: bytes, ts: int | None = None) -> dict[str, str]:
    """``X-Bastion-Timestamp`` and ``X-Bastion-Signature`` (one v1 per secret, as during a rotation)."""
    ts = int(time.time()) if ts is None else ts
    keys = [secret] if isinstance(secret, str) else secret
    sigs = [hmac.new(k.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest() for k in keys]
    return {"X-Bastion-Timestamp": str(ts), "X-Bastion-Signature": ",".join(f"v1={s}" for s in sigs)}


def pagerduty_body(
    *,
    incident_id: str = "PGR0VU2",
    number: int = 2,
    event_type: str = "incident.resolved",
    occurred_at: datetime | None = None,
    event_id: str | None = None,
) -> bytes:
    """A PagerDuty v3 webhook payload ({"event": {…, "data": <the incident>}})."""
    moment = (occurred_at or datetime.now(UTC)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return json.dumps(
        {
            "event": {
                "id": event_id or f"01{uuid.uuid4().hex[:24].upper()}",
                "event_type": event_type,
                "resource_type": "incident",
                "occurred_at": moment,
                "agent": {
                    "html_url": "https://acme.pagerduty.com/users/PLH1HKV",
                    "id": "PLH1HKV",
                    "type": "user_reference",
                },
                "client": None,
                "data": {
                    "id": incident_id,
                    "type": "incident",
                    "self": f"https://api.pagerduty.com/incidents/{incident_id}",
                    "html_url": f"https://acme.pagerduty.com/incidents/{incident_id}",
                    "number": number,
                    "status": "resolved" if event_type == "incident.resolved" else "triggered",
                    "incident_key": "d3640fbd41094207a1c11e58e46b1662",
                    "created_at": moment,
                    "title": "Checkout failing for EU customers",
                    "urgency": "high",
                    "resolve_reason": None,
                },
            }
        }
    ).encode()


def pagerduty_headers(secret: str | list[str], body: bytes) -> dict[str, str]:
    keys = [secret] if isinstance(secret, str) else secret
    sigs = [hmac.new(k.encode(), body, hashlib.sha256).hexdigest() for k in keys]
    return {"X-PagerDuty-Signature": ",".join(f"v1={s}" for s in sigs)}


def deliver(url: str, body: bytes, headers: dict[str, str], client: Client | None = None) -> Any:
    return (client or Client()).post(url, data=body, content_type="application/json", headers=headers)
