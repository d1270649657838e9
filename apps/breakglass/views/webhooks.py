"""The incident webhook endpoint: POST /breakglass/webhooks/incidents/<token>/ (public, signed).

The token only finds the tenant; the HMAC over the raw body (``webhook_protocol``)
authenticates. Answers: 200 done or ignored, 400 forged / stale / replayed /
malformed (nothing changed), 404 unknown token, 413 over the size limit.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.access.decorators import public_view
from apps.breakglass import incidents
from apps.core.middleware import client_ip

HEADERS = ("X-Bastion-Timestamp", "X-Bastion-Signature", "X-PagerDuty-Signature")


def max_bytes() -> int:
    # Incident events are a few KiB (a PagerDuty v3 event with its incident is under 10 KiB).
    return int(getattr(settings, "BREAKGLASS_WEBHOOK_MAX_BYTES", 256 * 1024))


def _plain(text: str, status: int) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain")


@csrf_exempt  # the sender cannot send a CSRF token; the signature on the raw body authenticates it
@public_view
@require_POST
def incident_webhook(request: HttpRequest, token: str) -> HttpResponse:
    limit = max_bytes()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return _plain("payload too large", 413)
    body = request.read(limit + 1)  # a body without a length header is cut off here, never read whole
    if len(body) > limit:
        return _plain("payload too large", 413)
    headers = {name: request.headers[name] for name in HEADERS if name in request.headers}
    try:
        receipt = incidents.incident_webhook_receive(
            token=token, body=body, headers=headers, source=client_ip(request) or ""
        )
    except incidents.WebhookNotFoundError:
        return _plain("unknown webhook", 404)
    except incidents.WebhookRejectedError as exc:
        return _plain(f"invalid webhook: {exc.reason}", 400)
    closure = receipt.closure
    return JsonResponse(
        {
            "status": "closed" if closure else "ignored",
            "incident": receipt.delivery.label,
            "ended": closure.ended if closure else 0,
            "cancelled": closure.cancelled if closure else 0,
        }
    )
