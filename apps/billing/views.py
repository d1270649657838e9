"""Stripe webhook endpoint (public, signed) and the platform dead-letter page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.access.decorators import platform_view, public_view
from apps.billing import conf, selectors, services
from apps.billing.errors import BillingError, WebhookRejectedError
from apps.core.middleware import client_ip
from apps.core.shortcuts import found_or_404


@csrf_exempt  # Stripe cannot send a CSRF token; the signature on the raw body authenticates it
@public_view
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    limit = conf.webhook_max_bytes()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > limit:
        return HttpResponse("payload too large", status=413, content_type="text/plain")
    body = request.body
    if len(body) > limit:
        return HttpResponse("payload too large", status=413, content_type="text/plain")
    try:
        services.stripe_webhook_receive(
            payload=body,
            signature=request.headers.get("Stripe-Signature"),
            source=client_ip(request) or "",
        )
    except WebhookRejectedError:
        return HttpResponse("invalid webhook", status=400, content_type="text/plain")
    return HttpResponse("ok", content_type="text/plain")


@platform_view
def dead_letters(request: HttpRequest) -> HttpResponse:
    return render(request, "billing/dead_letters.html", {"events": selectors.webhook_dead_letters()[:200]})


@platform_view
@require_POST
def replay(request: HttpRequest, pk: int) -> HttpResponse:
    event = found_or_404(selectors.webhook_get(pk=pk))
    try:
        services.webhook_replay(event=event, by=request.user)
    except BillingError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Event {event.event_id} queued again.")
    return redirect("platform:billing_dead_letters")
