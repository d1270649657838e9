"""OpenID Connect over HTTP: discovery, the redirect to the provider, the callback, JWKS and the token call.

The sign-in flow calls three functions and keeps everything else (session, users, audit) to itself:

- ``discover(issuer)`` fetches and checks the provider's discovery document (raises ``SSOConfigError``);
- ``begin(connection, ...)`` builds the authorization URL and the state blob the flow stores in the session;
- ``complete(connection, ...)`` checks the callback against that blob, redeems the code at the token endpoint,
  verifies the ID token (signature from the provider's JWKS, issuer, audience, time, nonce), refuses replays
  (``apps.sso.replay``) and maps the claims to an ``Assertion`` (raises ``SSOError`` with a stable code).

The rules themselves are in ``apps.sso.oidc.protocol``. Every request to the provider (discovery, JWKS,
token) goes through ``_request`` and so through the one SSRF-safe fetcher ``apps.core.netfetch``: https on
port 443 only (plain http only to the loopback interface when ``DEBUG`` or ``SSO_ALLOW_INSECURE_LOOPBACK``),
the host resolved once and the connection pinned to the checked address, no redirects, a size cap and an
overall deadline, and no private-network addresses unless ``SSO_FETCH_ALLOW_PRIVATE`` (tenant admins type
the issuer: the server must not become their window into our network).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

from apps.core import netfetch
from apps.sso import replay
from apps.sso.models import SSOConnection
from apps.sso.oidc.protocol import (
    SigningKey,
    assertion_from_claims,
    check_callback,
    check_issuer,
    decode_id_token,
    id_token_from_response,
    id_token_header,
    matching_keys,
    parse_jwks,
    replay_key,
    token_auth_method,
    url_problem,
    validate_discovery,
)
from apps.sso.types import Assertion, SSOConfigError, SSOError

MAX_DISCOVERY_BYTES = 256 * 1024
MAX_JWKS_BYTES = 256 * 1024
MAX_TOKEN_RESPONSE_BYTES = 256 * 1024
JWKS_CACHE_SECONDS = 5 * 60
JWKS_CACHE_MAX_ENTRIES = 256
USER_AGENT = "Bastion-SSO/1 (OpenID Connect relying party)"


# --- discovery ------------------------------------------------------------------------------------


def discover(issuer: str, *, timeout: float = 10) -> dict[str, Any]:
    """Fetch and check ``{issuer}/.well-known/openid-configuration``; return the whole document.

    The document's ``issuer`` must equal ``issuer`` exactly, the endpoints must be usable URLs, the
    provider must support the ``code`` response type and at least one of ``SAFE_SIGNING_ALGORITHMS``.
    Raises ``SSOConfigError`` with a message an administrator can act on.
    """
    check_issuer(issuer)
    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        status, body = _request("GET", url, timeout=timeout, max_bytes=MAX_DISCOVERY_BYTES)
        if status != 200:
            raise _FetchError(f"answered HTTP {status}")
        document = _json_object(body)
    except _FetchError as exc:
        raise SSOConfigError(f"The discovery document at {url} {exc}.") from exc
    validate_discovery(document, issuer)
    return document


# --- the authorization request --------------------------------------------------------------------


def begin(
    connection: SSOConnection,
    *,
    redirect_uri: str,
    client_id: str,
    scopes: list[str],
    discovery: Mapping[str, Any],
    login_hint: str = "",
    prompt: str = "",
) -> tuple[str, dict[str, Any]]:
    """Return the authorization URL to redirect the browser to, and the blob to keep in the session.

    The blob (JSON-safe) holds ``state``, ``nonce``, ``code_verifier``, ``created_at`` (Unix seconds)
    and ``connection`` (the connection's public id); pass it unchanged to ``complete`` and drop it
    from the session at the callback, whatever the outcome. ``openid`` is always requested.
    Raises ``SSOConfigError`` when the stored discovery has no usable authorization endpoint.
    """
    endpoint = discovery.get("authorization_endpoint")
    problem = url_problem(endpoint) if isinstance(endpoint, str) else "is missing"
    if problem:
        raise SSOConfigError(f"The authorization endpoint {problem}.")

    state = secrets.token_urlsafe(32)
    nonce = secrets.token_urlsafe(32)
    code_verifier = secrets.token_urlsafe(64)  # 86 characters: RFC 7636 wants 43 to 128
    scope = list(dict.fromkeys(["openid", *(s for s in scopes if s and s.strip())]))
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scope),
        "state": state,
        "nonce": nonce,
        "code_challenge": _s256(code_verifier),
        "code_challenge_method": "S256",
    }
    if login_hint:
        params["login_hint"] = login_hint
    if prompt:
        params["prompt"] = prompt
    blob = {
        "state": state,
        "nonce": nonce,
        "code_verifier": code_verifier,
        "created_at": int(time.time()),
        "connection": str(connection.public_id),
    }
    return _with_query(endpoint, params), blob


def _s256(code_verifier: str) -> str:
    """PKCE S256 code challenge: base64url(SHA-256(verifier)) without padding."""
    digest = hashlib.sha256(code_verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` added to its query; parameters the endpoint already carries (e.g. a policy) stay."""
    parts = urlsplit(url)
    kept = [(key, value) for key, value in parse_qsl(parts.query, keep_blank_values=True) if key not in params]
    return urlunsplit(parts._replace(query=urlencode([*kept, *params.items()])))


# --- the callback ---------------------------------------------------------------------------------


def complete(
    connection: SSOConnection,
    *,
    redirect_uri: str,
    params: Mapping[str, Any],
    state_blob: Mapping[str, Any],
    client_id: str,
    client_secret: str,
    discovery: Mapping[str, Any],
    timeout: float = 10,
    leeway: int = 60,
) -> Assertion:
    """Verify the provider's callback and return the identity it asserts.

    ``params`` is the callback's query (a dict or QueryDict); ``state_blob`` what ``begin`` returned;
    ``redirect_uri`` the same value given to ``begin``. The ID token is recorded in ``SeenAssertion``
    (a write: call this outside any transaction that may roll back, or the replay record goes with it).

    Raises ``SSOError`` with code ``idp_error``, ``state``, ``token_exchange``, ``network``, ``signature``,
    ``issuer``, ``audience``, ``expired``, ``nonce``, ``claims`` or ``replay``.
    """
    blob, code = check_callback(connection, params=params, state_blob=state_blob, discovery=discovery, leeway=leeway)
    id_token = _exchange_code(
        connection,
        discovery=discovery,
        code=code,
        redirect_uri=redirect_uri,
        code_verifier=blob["code_verifier"],
        client_id=client_id,
        client_secret=client_secret,
        timeout=timeout,
    )
    claims = _verify_id_token(
        id_token, discovery=discovery, client_id=client_id, nonce=blob["nonce"], timeout=timeout, leeway=leeway
    )
    assertion = assertion_from_claims(connection, claims)
    assertion_id, expires_at = replay_key(id_token, claims, leeway=leeway)
    if not replay.remember(connection=connection, assertion_id=assertion_id, expires_at=expires_at):
        raise SSOError("replay", "This sign-in response was already used.")
    return assertion


# --- the token endpoint ---------------------------------------------------------------------------


def _exchange_code(
    connection: SSOConnection,
    *,
    discovery: Mapping[str, Any],
    code: str,
    redirect_uri: str,
    code_verifier: str,
    client_id: str,
    client_secret: str,
    timeout: float,
) -> str:
    """Redeem the authorization code (with the PKCE verifier) and return the raw ID token."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    headers: dict[str, str] = {}
    method = token_auth_method(connection, discovery)
    if not client_secret:
        form["client_id"] = client_id  # a public client: PKCE is its only proof
    elif method == "client_secret_post":
        form["client_id"] = client_id
        form["client_secret"] = client_secret
    else:
        # RFC 6749 2.3.1: both parts are form-encoded before they are joined and base64-encoded.
        credentials = f"{quote_plus(client_id)}:{quote_plus(client_secret)}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")

    endpoint = discovery.get("token_endpoint")
    if not isinstance(endpoint, str):
        raise SSOError("token_exchange", "The identity provider has no token endpoint.")
    try:
        status, body = _request(
            "POST", endpoint, timeout=timeout, max_bytes=MAX_TOKEN_RESPONSE_BYTES, data=form, headers=headers
        )
    except _FetchError as exc:
        raise SSOError("network", f"The token endpoint {exc}.") from exc
    try:
        payload = _json_object(body)
    except _FetchError as exc:
        raise SSOError(
            "token_exchange", f"The token endpoint answered HTTP {status} with a body that is not JSON."
        ) from exc
    return id_token_from_response(status, payload)


# --- the ID token and the provider's keys ---------------------------------------------------------


_jwks_cache: dict[str, tuple[float, list[SigningKey]]] = {}
_jwks_lock = threading.Lock()


def clear_jwks_cache() -> None:
    """Forget every cached key set (tests; an administrator who knows the provider rotated keys)."""
    with _jwks_lock:
        _jwks_cache.clear()


def _verify_id_token(
    id_token: str, *, discovery: Mapping[str, Any], client_id: str, nonce: str, timeout: float, leeway: int
) -> dict[str, Any]:
    """The ID token's claims, verified with a key the provider publishes (see ``protocol.decode_id_token``)."""
    header = id_token_header(id_token, discovery=discovery, client_id=client_id)
    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise SSOError("signature", "The identity provider publishes no keys.")
    candidates = matching_keys(_signing_keys(jwks_uri, timeout=timeout), kid=header.kid, alg=header.alg)
    if not candidates:
        # The provider may have rotated its keys since we cached them: look once more.
        keys = _signing_keys(jwks_uri, timeout=timeout, refresh=True)
        candidates = matching_keys(keys, kid=header.kid, alg=header.alg)
    if not candidates:
        raise SSOError("signature", "The ID token is signed with a key the identity provider does not publish.")
    return decode_id_token(
        id_token, header=header, candidates=candidates, client_id=client_id, nonce=nonce, leeway=leeway
    )


def _signing_keys(jwks_uri: str, *, timeout: float, refresh: bool = False) -> list[SigningKey]:
    """The provider's signature keys, cached for ``JWKS_CACHE_SECONDS`` per ``jwks_uri``."""
    if not refresh:
        with _jwks_lock:
            cached = _jwks_cache.get(jwks_uri)
        if cached and time.monotonic() - cached[0] < JWKS_CACHE_SECONDS:
            return cached[1]
    keys = _fetch_jwks(jwks_uri, timeout=timeout)
    with _jwks_lock:
        if len(_jwks_cache) >= JWKS_CACHE_MAX_ENTRIES:
            _jwks_cache.pop(min(_jwks_cache, key=lambda uri: _jwks_cache[uri][0]))
        _jwks_cache[jwks_uri] = (time.monotonic(), keys)
    return keys


def _fetch_jwks(jwks_uri: str, *, timeout: float) -> list[SigningKey]:
    """Download and parse a JWKS; keys that are not RSA/EC signature keys are left out."""
    try:
        status, body = _request("GET", jwks_uri, timeout=timeout, max_bytes=MAX_JWKS_BYTES)
        if status != 200:
            raise _FetchError(f"answered HTTP {status}")
        document = _json_object(body)
    except _FetchError as exc:
        raise SSOError("network", f"The identity provider's key set {exc}.") from exc
    return parse_jwks(document)


# --- HTTP -----------------------------------------------------------------------------------------


class _FetchError(Exception):
    """A request to the provider that failed; the message completes a sentence about the URL."""


def _request(
    method: str,
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> tuple[int, bytes]:
    """Send one request to the provider through ``apps.core.netfetch``; return (status, body).

    The fetcher resolves the host once, refuses private, loopback and reserved
    addresses (per ``FetchPolicy.from_settings``), pins the connection to the
    checked address, allows https on port 443 only, caps the body at
    ``max_bytes`` and the exchange at ``timeout`` seconds. Redirects are not
    followed (each URL was checked, its target would not be). Raises
    ``_FetchError`` on any refusal or failure.
    """
    sent_headers = {"Accept": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    try:
        response = netfetch.fetch(method, url, max_bytes=max_bytes, timeout=timeout, data=data, headers=sent_headers)
    except netfetch.FetchError as exc:
        raise _FetchError(exc.message) from exc
    return response.status, response.body


def _json_object(body: bytes) -> dict[str, Any]:
    """Parse a JSON object or raise ``_FetchError("is not JSON")``."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _FetchError("is not JSON") from exc
    if not isinstance(value, dict):
        raise _FetchError("is not a JSON object")
    return value
