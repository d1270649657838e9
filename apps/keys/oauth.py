"""OAuth 2.0 protocol details of the token endpoint (RFC 6749 §2.3.1, §4.4, §5) and server metadata (RFC 8414).

Kept out of the view: reading ``client_secret_basic`` (the id and secret are
form-urlencoded *before* Base64, §2.3.1) and ``client_secret_post``, refusing
a request that uses both or neither, and the error body shape
``{"error": ..., "error_description": ...}`` with ``Cache-Control: no-store``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any
from urllib.parse import unquote_plus

from django.http import HttpRequest, HttpResponse

from apps.keys import conf, signing, tokens


class OAuthError(Exception):
    def __init__(self, code: str, description: str, status: int = 400, *, basic: bool = False) -> None:
        super().__init__(description)
        self.code, self.description, self.status, self.basic = code, description, status, basic


def json_response(body: dict[str, Any], status: int = 200, **headers: str) -> HttpResponse:
    response = HttpResponse(json.dumps(body, separators=(",", ":")), status=status, content_type="application/json")
    response["Cache-Control"] = "no-store"
    response["Pragma"] = "no-cache"
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def error_response(error: OAuthError, **headers: str) -> HttpResponse:
    if error.status == 401:
        # §5.2: a client that tried HTTP authentication gets the scheme it should use.
        headers.setdefault("WWW_Authenticate", 'Basic realm="bastion", charset="UTF-8"')
    return json_response({"error": error.code, "error_description": error.description}, error.status, **headers)


def client_credentials(request: HttpRequest) -> tuple[str, str, bool]:
    """``(client_id, client_secret, used_basic)`` of the request; raises OAuthError."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    in_body = "client_id" in request.POST or "client_secret" in request.POST
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            raise OAuthError("invalid_client", "Use HTTP Basic or client_secret_post.", 401, basic=True)
        if in_body:
            raise OAuthError("invalid_request", "Use one client authentication method, not two.")
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "Malformed HTTP Basic credentials.", 401, basic=True) from None
        raw_id, sep, raw_secret = decoded.partition(":")
        if not sep:
            raise OAuthError("invalid_client", "Malformed HTTP Basic credentials.", 401, basic=True)
        return unquote_plus(raw_id), unquote_plus(raw_secret), True
    client_id, secret = request.POST.get("client_id", ""), request.POST.get("client_secret", "")
    if not client_id or not secret:
        raise OAuthError("invalid_client", "Client authentication is required.", 401)
    return client_id, secret, False


def token_body(issued: tokens.IssuedToken) -> dict[str, Any]:
    return {
        "access_token": issued.access_token,
        "token_type": issued.token_type,
        "expires_in": issued.expires_in,
        "scope": issued.scope,
    }


def server_metadata() -> dict[str, Any]:
    """RFC 8414 authorization-server metadata."""
    issuer = conf.issuer()
    return {
        "issuer": issuer,
        "token_endpoint": issuer + "/api/v1/oauth/token",
        "jwks_uri": issuer + "/.well-known/jwks.json",
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "response_types_supported": [],
        "scopes_supported": list(tokens.API_SCOPES),
        "token_endpoint_auth_signing_alg_values_supported": list(signing.ALGORITHMS),
        "access_token_signing_alg_values_supported": list(signing.ALGORITHMS),
    }
