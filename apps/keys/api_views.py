"""The public OAuth faces of the keys app: the token endpoint, the JWKS and the server metadata.

Thin: ``apps.keys.oauth`` reads and writes the protocol, ``services`` decides.
Failed client authentication is rate limited with django-ratelimit (fixed
windows in the shared cache, atomic increments in Redis) per client id and per
IP, counted only on failure, and each failure is audited.
"""

from __future__ import annotations

import hashlib
import json

from django.http import HttpRequest, HttpResponse
from django.utils.http import http_date
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from django_ratelimit.core import get_usage

from apps.access.decorators import public_view
from apps.keys import conf, oauth, services, signing

_RATE_GROUPS = ("keys.token.client", "keys.token.ip")


def _limited(request: HttpRequest, client_id: str, *, increment: bool) -> int:
    """Seconds until the caller may try again (0: not limited); ``increment`` counts one failure."""
    per_client, per_ip = conf.failure_rates()
    client_key = hashlib.sha256(client_id.encode("utf-8", "replace")).hexdigest()
    wait = 0
    for group, rate, value in (
        (_RATE_GROUPS[0], per_client, client_key),
        (_RATE_GROUPS[1], per_ip, services.request_ip() or "unknown"),
    ):
        usage = get_usage(request, group=group, key=lambda _group, _request, v=value: v, rate=rate, increment=increment)
        # A rate "N/m" allows N failures a minute: the next attempt (counted or not) is refused.
        if usage is not None and usage["count"] >= usage["limit"]:
            wait = max(wait, int(usage["time_left"]) or 1)
    return wait


@public_view  # authenticated by the client's secret inside; the endpoint itself is public
@csrf_exempt
@require_POST
def token(request: HttpRequest) -> HttpResponse:
    """``POST /api/v1/oauth/token``: client credentials grant; RFC 6749 JSON errors."""
    if request.content_type != "application/x-www-form-urlencoded":
        return oauth.error_response(oauth.OAuthError("invalid_request", "Send application/x-www-form-urlencoded."))
    try:
        client_id, secret, basic = oauth.client_credentials(request)
    except oauth.OAuthError as error:
        return oauth.error_response(error)
    wait = _limited(request, client_id, increment=False)
    if wait:
        services.client_auth_failed(client_id=client_id, reason="rate_limited")
        return oauth.error_response(
            oauth.OAuthError("invalid_client", "Too many failed attempts; try again later.", 429), Retry_After=str(wait)
        )
    try:
        client = services.client_authenticate(client_id=client_id, secret=secret)
    except services.ClientAuthError as failure:
        _limited(request, client_id, increment=True)
        services.client_auth_failed(client_id=client_id, reason=failure.reason)
        return oauth.error_response(
            oauth.OAuthError("invalid_client", "Client authentication failed.", 401, basic=basic)
        )
    if request.POST.get("grant_type") != "client_credentials":
        return oauth.error_response(oauth.OAuthError("unsupported_grant_type", "Only client_credentials is supported."))
    try:
        issued = services.token_issue(
            client=client,
            audience=request.POST.get("audience", "") or request.POST.get("resource", ""),
            scope=request.POST.get("scope", ""),
        )
    except services.TokenRequestError as refused:
        return oauth.error_response(oauth.OAuthError(refused.code, refused.description))
    return oauth.json_response(oauth.token_body(issued))


def _public_json(request: HttpRequest, body: dict) -> HttpResponse:
    text = json.dumps(body, separators=(",", ":"), sort_keys=True)
    etag = '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'
    if request.META.get("HTTP_IF_NONE_MATCH") == etag:
        response = HttpResponse(status=304)
    else:
        response = HttpResponse(text, content_type="application/json")
    response["Cache-Control"] = f"public, max-age={conf.JWKS_MAX_AGE}"
    response["ETag"] = etag
    response["Last-Modified"] = http_date()
    return response


@public_view
@require_GET
def jwks(request: HttpRequest) -> HttpResponse:
    """``/.well-known/jwks.json``: every key that may verify a token now (next, active, recently retired)."""
    return _public_json(request, signing.jwks())


@public_view
@require_GET
def server_metadata(request: HttpRequest) -> HttpResponse:
    """``/.well-known/oauth-authorization-server`` (RFC 8414)."""
    return _public_json(request, oauth.server_metadata())
