"""Payment-provider webhook endpoints (public, signed: Stripe, Adyen) and the platform dead-letter page."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.access.decorators import platform_view, public_view
from apps.billing import conf, providers, selectors, services
from apps.billing.errors import BillingError, WebhookRejectedError
from apps.core.decorators import cookieless_view
from apps.core.middleware import client_ip
from apps.core.pagination import InvalidCursorError, keyset_page
from apps.core.shortcuts import found_or_404


def _receive(request: HttpRequest, provider: str) -> HttpResponse:
    """Size check before the body is read, then the one service call; the provider names its ack."""
    limit = conf.webhook_max_bytes()
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = -1
    if declared > limit:
        # Refused on the declared length alone: nothing of the body is read.
        return HttpResponse("payload too large", status=413, content_type="text/plain")
    # At most the declared length is read (Django's LimitedStream); a body without a length
    # (chunked) reads as empty and is refused below as malformed.
    body = request.read(limit + 1) if declared > 0 else b""
    if len(body) > limit:
        return HttpResponse("payload too large", status=413, content_type="text/plain")
    try:
        services.webhook_receive(provider=provider, body=body, headers=request.headers, source=client_ip(request) or "")
    except WebhookRejectedError:
        return HttpResponse("invalid webhook", status=400, content_type="text/plain")
    ack = providers.get(provider).ack  # type: ignore[union-attr]  # the URL names a known provider
    return HttpResponse(ack.body, content_type=ack.content_type)


# Providers cannot send a CSRF token; the signature on the raw body authenticates each delivery.
# ``cookieless_view``: apps.core.middleware.ShortcutMiddleware hands these straight to the view (no session,
# CSRF, sign-in or messages middleware: a webhook carries no cookie).
@csrf_exempt
@public_view
@require_POST
def stripe_webhook(request: HttpRequest) -> HttpResponse:
    return _receive(request, "stripe")


@csrf_exempt
@public_view
@require_POST
def adyen_webhook(request: HttpRequest) -> HttpResponse:
    return _receive(request, "adyen")


cookieless_view(stripe_webhook)
cookieless_view(adyen_webhook)


DEAD_LETTER_PAGE_SIZE = 50


@platform_view
def dead_letters(request: HttpRequest) -> HttpResponse:
    """Dead-lettered and refused events of every provider, newest first, one keyset page at a time."""
    try:
        page = keyset_page(
            selectors.webhook_dead_letters(),
            cursor=request.GET.get("cursor") or None,
            size=DEAD_LETTER_PAGE_SIZE,
            time_field="received_at",
        )
    except InvalidCursorError:
        return HttpResponse("invalid cursor", status=400, content_type="text/plain")
    return render(request, "billing/dead_letters.html", {"events": page.rows, "next_cursor": page.next_cursor})


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
