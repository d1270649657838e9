"""OpenID Connect relying party: discovery, the authorization request and the callback (code flow with PKCE).

The sign-in flow calls three functions and keeps everything else (session, users, audit) to itself:

- ``discover(issuer)`` fetches and checks the provider's discovery document (raises ``SSOConfigError``);
- ``begin(connection, ...)`` builds the authorization URL and the state blob the flow stores in the session;
- ``complete(connection, ...)`` checks the callback against that blob, redeems the code at the token endpoint,
  verifies the ID token (signature from the provider's JWKS, issuer, audience, time, nonce), refuses replays
  and maps the claims to an ``Assertion`` (raises ``SSOError`` with a stable code).

Every request to the provider (discovery, JWKS, token) goes through ``_request`` and so through the one
SSRF-safe fetcher ``apps.core.netfetch``: https on port 443 only (plain http only to the loopback
interface when ``DEBUG`` or ``SSO_ALLOW_INSECURE_LOOPBACK``), the host resolved once and the connection
pinned to the checked address, no redirects, a size cap and an overall deadline, and no private-network
addresses unless ``SSO_FETCH_ALLOW_PRIVATE`` (tenant admins type the issuer: the server must not become
their window into our network).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, quote_plus, urlencode, urlsplit, urlunsplit

import jwt
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction

from apps.core import netfetch
from apps.sso.models import SeenAssertion, SSOConnection
from apps.sso.types import Assertion, SSOConfigError, SSOError

# Asymmetric algorithms only: "none" and HS* (where the public key could be abused as the HMAC secret) never.
SAFE_SIGNING_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384")

# RFC 8176 authentication method references that mean more than a password was used.
MFA_AMR_VALUES = frozenset(
    {
        "mfa",  # multiple factors
        "mca",  # multiple channels
        "otp",  # one-time password
        "hwk",  # proof of possession of a hardware key (security key, smart card)
        "swk",  # proof of possession of a software key
        "sc",  # smart card
        "pop",  # proof of possession of a key
        "sms",  # confirmation by text message
        "tel",  # confirmation by telephone call
        "fpt",  # fingerprint
        "face",  # facial recognition
        "iris",  # iris scan
        "retina",  # retina scan
        "vbm",  # voice biometrics
    }
)

DISCOVERY_REQUIRED_FIELDS = (
    "issuer",
    "authorization_endpoint",
    "token_endpoint",
    "jwks_uri",
    "response_types_supported",
    "id_token_signing_alg_values_supported",
)
DISCOVERY_URL_FIELDS = ("authorization_endpoint", "token_endpoint", "jwks_uri")

# Claim names used when the connection's attribute_mapping leaves a field out.
DEFAULT_CLAIM_MAPPING = {"email": "email", "first_name": "given_name", "last_name": "family_name", "groups": "groups"}

TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")
STATE_MAX_AGE_SECONDS = 10 * 60
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
    if not isinstance(issuer, str) or not issuer.strip():
        raise SSOConfigError("The issuer is empty.")
    problem = _url_problem(issuer)
    if problem:
        raise SSOConfigError(f"The issuer {problem}.")
    parts = urlsplit(issuer)
    if parts.query or parts.fragment:
        raise SSOConfigError("The issuer must not contain a query string or fragment.")

    url = issuer.rstrip("/") + "/.well-known/openid-configuration"
    try:
        status, body = _request("GET", url, timeout=timeout, max_bytes=MAX_DISCOVERY_BYTES)
        if status != 200:
            raise _FetchError(f"answered HTTP {status}")
        document = _json_object(body)
    except _FetchError as exc:
        raise SSOConfigError(f"The discovery document at {url} {exc}.") from exc
    _validate_discovery(document, issuer)
    return document


def _validate_discovery(document: dict[str, Any], issuer: str) -> None:
    """Raise ``SSOConfigError`` naming the first field of ``document`` that cannot be used."""
    for name in DISCOVERY_REQUIRED_FIELDS:
        if name not in document or document[name] in (None, "", []):
            raise SSOConfigError(f"The discovery document has no {name}.")
    if document["issuer"] != issuer:
        # OpenID Connect Discovery 4.3: exact match, or a look-alike provider could vouch for another issuer.
        raise SSOConfigError(
            f"The discovery document's issuer {str(document['issuer'])[:200]!r} is not the configured {issuer!r}."
        )
    for name in DISCOVERY_URL_FIELDS:
        value = document[name]
        if not isinstance(value, str):
            raise SSOConfigError(f"The discovery document's {name} is not a URL.")
        problem = _url_problem(value)
        if problem:
            raise SSOConfigError(f"The discovery document's {name} {problem}.")
    response_types = document["response_types_supported"]
    if not isinstance(response_types, list) or "code" not in response_types:
        raise SSOConfigError("The discovery document's response_types_supported does not include “code”.")
    if not _allowed_algorithms(document):
        raise SSOConfigError(
            "The discovery document's id_token_signing_alg_values_supported has none of "
            + ", ".join(SAFE_SIGNING_ALGORITHMS)
            + "."
        )


def _allowed_algorithms(discovery: Mapping[str, Any]) -> list[str]:
    """The provider's ID token algorithms that we accept, in our order of preference."""
    offered = discovery.get("id_token_signing_alg_values_supported")
    if not isinstance(offered, list):
        return []
    return [alg for alg in SAFE_SIGNING_ALGORITHMS if alg in offered]


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
    problem = _url_problem(endpoint) if isinstance(endpoint, str) else "is missing"
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
    blob = _checked_blob(connection, state_blob)

    # State first, even for error responses (they carry it too): otherwise anyone could send a user to
    # our callback with an error_description of their choosing and have us display it.
    state = _param(params, "state")
    if state is None or not hmac.compare_digest(state.encode(), blob["state"].encode()):
        raise SSOError("state", "The sign-in response does not belong to this browser's sign-in attempt.")

    error = _param(params, "error")
    if error is not None:
        description = _param(params, "error_description") or ""
        detail = _printable(f"{error}: {description}" if description else error)
        raise SSOError("idp_error", f"The identity provider refused the sign-in ({detail}).")

    age = time.time() - blob["created_at"]
    if age > STATE_MAX_AGE_SECONDS or age < -leeway:
        raise SSOError("state", "The sign-in attempt is too old; please start again.")

    # RFC 9207: a provider that names itself in the response must be the one we sent the browser to.
    response_issuer = _param(params, "iss")
    if response_issuer is not None and response_issuer != discovery.get("issuer"):
        raise SSOError("issuer", "The sign-in response comes from another identity provider.")
    if response_issuer is None and discovery.get("authorization_response_iss_parameter_supported") is True:
        raise SSOError("issuer", "The sign-in response does not name its identity provider.")

    code = _param(params, "code")
    if not code:
        raise SSOError("idp_error", "The identity provider returned no authorization code.")

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
    assertion = _assertion_from_claims(connection, claims)
    _record_token(connection, id_token, claims, leeway=leeway)
    return assertion


def _checked_blob(connection: SSOConnection, state_blob: Mapping[str, Any]) -> dict[str, Any]:
    """The state blob if it is well formed and was made for ``connection``; ``SSOError("state")`` if not."""
    if not isinstance(state_blob, Mapping):
        raise SSOError("state", "There is no sign-in attempt in progress in this browser.")
    blob = dict(state_blob)
    well_formed = (
        all(isinstance(blob.get(key), str) and blob[key] for key in ("state", "nonce", "code_verifier"))
        and isinstance(blob.get("created_at"), int | float)
        and not isinstance(blob.get("created_at"), bool)
        and math.isfinite(blob["created_at"])
    )
    if not well_formed:
        raise SSOError("state", "There is no sign-in attempt in progress in this browser.")
    if blob.get("connection") != str(connection.public_id):
        raise SSOError("state", "The sign-in attempt in this browser was for another identity provider.")
    return blob


def _param(params: Mapping[str, Any], name: str) -> str | None:
    """One callback parameter as a string; ``None`` when absent. A repeated parameter counts as absent."""
    value = params.get(name)
    if isinstance(value, list | tuple):
        value = value[0] if len(value) == 1 else None
    if value is None:
        return None
    return value if isinstance(value, str) else None


def _printable(text: str, limit: int = 200) -> str:
    """Provider-supplied text made safe to show and log: printable characters only, bounded length."""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit]


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
    method = _token_auth_method(connection, discovery)
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
    if status != 200:
        error = payload.get("error")
        description = payload.get("error_description")
        detail = _printable(str(error)) if error else f"HTTP {status}"
        if isinstance(description, str) and description:
            detail += ": " + _printable(description)
        raise SSOError("token_exchange", f"The identity provider refused the authorization code ({detail}).")
    id_token = payload.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise SSOError("token_exchange", "The token endpoint returned no ID token.")
    return id_token


def _token_auth_method(connection: SSOConnection, discovery: Mapping[str, Any]) -> str:
    """client_secret_basic or client_secret_post: the connection's choice, else what the provider supports."""
    configured = (connection.config or {}).get("token_endpoint_auth_method")
    if configured in TOKEN_AUTH_METHODS:
        return configured
    # OpenID Connect Discovery: an absent list means client_secret_basic.
    supported = discovery.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" not in supported and "client_secret_post" in supported:
        return "client_secret_post"
    return "client_secret_basic"


# --- the ID token ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _SigningKey:
    """One usable public key from a provider's JWKS."""

    kid: str | None
    kty: str
    alg: str | None  # the JWK's declared algorithm, if any
    key: Any  # a cryptography public key


_jwks_cache: dict[str, tuple[float, list[_SigningKey]]] = {}
_jwks_lock = threading.Lock()


def clear_jwks_cache() -> None:
    """Forget every cached key set (tests; an administrator who knows the provider rotated keys)."""
    with _jwks_lock:
        _jwks_cache.clear()


def _verify_id_token(
    id_token: str, *, discovery: Mapping[str, Any], client_id: str, nonce: str, timeout: float, leeway: int
) -> dict[str, Any]:
    """The ID token's claims once signature, issuer, audience, time, authorized party and nonce are checked."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise SSOError("signature", "The ID token is not a well-formed signed token.") from exc
    alg = header.get("alg")
    if alg not in _allowed_algorithms(discovery):
        raise SSOError("signature", f"The ID token is signed with an algorithm we refuse ({_printable(str(alg), 20)}).")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise SSOError("signature", "The ID token names its key with something that is not a key id.")

    issuer = discovery.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        # PyJWT skips the issuer check when given none: never let a damaged discovery turn it off.
        raise SSOError("issuer", "The identity provider's issuer is not configured.")
    if not client_id:
        raise SSOError("audience", "The client id is not configured.")

    jwks_uri = discovery.get("jwks_uri")
    if not isinstance(jwks_uri, str):
        raise SSOError("signature", "The identity provider publishes no keys.")
    candidates = _matching_keys(_signing_keys(jwks_uri, timeout=timeout), kid=kid, alg=alg)
    if not candidates:
        # The provider may have rotated its keys since we cached them: look once more.
        candidates = _matching_keys(_signing_keys(jwks_uri, timeout=timeout, refresh=True), kid=kid, alg=alg)
    if not candidates:
        raise SSOError("signature", "The ID token is signed with a key the identity provider does not publish.")

    claims: dict[str, Any] | None = None
    for candidate in candidates:
        try:
            claims = jwt.decode(
                id_token,
                candidate.key,
                algorithms=[alg],
                audience=client_id,
                issuer=issuer,
                leeway=leeway,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
            break
        except jwt.InvalidSignatureError:
            continue  # without a kid, several keys may fit: try the next one
        except jwt.PyJWTError as exc:
            raise _token_error(exc) from exc
    if claims is None:
        raise SSOError("signature", "The ID token's signature is not valid.")

    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    authorized_party = claims.get("azp")
    if len(audiences) > 1 and authorized_party is None:
        raise SSOError("audience", "The ID token is meant for several clients and names none as its requester.")
    if authorized_party is not None and authorized_party != client_id:
        raise SSOError("audience", "The ID token was requested by another client.")

    token_nonce = claims.get("nonce")
    if not isinstance(token_nonce, str) or not hmac.compare_digest(token_nonce.encode(), nonce.encode()):
        raise SSOError("nonce", "The ID token does not belong to this sign-in attempt.")

    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject or len(subject) > 255:
        raise SSOError("claims", "The ID token has no usable subject.")
    return claims


def _token_error(exc: jwt.PyJWTError) -> SSOError:
    """Map a PyJWT refusal to our stable codes."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return SSOError("expired", "The ID token has expired.")
    if isinstance(exc, jwt.ImmatureSignatureError):
        return SSOError("expired", "The ID token is not valid yet (check the clocks).")
    if isinstance(exc, jwt.InvalidIssuerError):
        return SSOError("issuer", "The ID token was issued by another identity provider.")
    if isinstance(exc, jwt.InvalidAudienceError):
        return SSOError("audience", "The ID token is meant for another client.")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        code = {"iss": "issuer", "aud": "audience"}.get(exc.claim, "claims")
        return SSOError(code, f"The ID token has no {exc.claim} claim.")
    if isinstance(exc, jwt.InvalidKeyError | jwt.InvalidAlgorithmError | jwt.DecodeError):
        return SSOError("signature", "The ID token's signature could not be verified.")
    return SSOError("claims", "The ID token's claims are malformed.")


def _matching_keys(keys: list[_SigningKey], *, kid: str | None, alg: str) -> list[_SigningKey]:
    """Keys that may have signed a token with this header: right type, compatible declared alg, same kid."""
    kty = "EC" if alg.startswith("ES") else "RSA"
    fitting = [key for key in keys if key.kty == kty and key.alg in (None, alg)]
    if kid is None:
        return fitting
    return [key for key in fitting if key.kid == kid]


def _signing_keys(jwks_uri: str, *, timeout: float, refresh: bool = False) -> list[_SigningKey]:
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


def _fetch_jwks(jwks_uri: str, *, timeout: float) -> list[_SigningKey]:
    """Download and parse a JWKS; keys that are not RSA/EC signature keys are left out."""
    try:
        status, body = _request("GET", jwks_uri, timeout=timeout, max_bytes=MAX_JWKS_BYTES)
        if status != 200:
            raise _FetchError(f"answered HTTP {status}")
        document = _json_object(body)
    except _FetchError as exc:
        raise SSOError("network", f"The identity provider's key set {exc}.") from exc
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise SSOError("signature", "The identity provider's key set has no keys.")
    keys = []
    for entry in entries:
        if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC"):
            continue  # symmetric ("oct") keys never verify our ID tokens
        if entry.get("use", "sig") != "sig":
            continue
        declared_alg = entry.get("alg")
        if declared_alg is not None and declared_alg not in SAFE_SIGNING_ALGORITHMS:
            continue
        try:
            # PyJWK needs an algorithm to build the key object; the family default does (RS256 / curve's ES*).
            parsed = jwt.PyJWK(entry)
        except jwt.PyJWTError:
            continue
        kid = entry.get("kid")
        keys.append(
            _SigningKey(kid=kid if isinstance(kid, str) else None, kty=entry["kty"], alg=declared_alg, key=parsed.key)
        )
    return keys


def _record_token(connection: SSOConnection, id_token: str, claims: Mapping[str, Any], *, leeway: int) -> None:
    """Remember the token until it could no longer be accepted anyway; a second use is a replay."""
    jti = claims.get("jti")
    if isinstance(jti, str) and jti and len(jti) <= 200:
        assertion_id = f"jti:{jti}"
    else:
        assertion_id = "sha256:" + hashlib.sha256(id_token.encode()).hexdigest()
    expires_at = datetime.fromtimestamp(int(claims["exp"]) + leeway, tz=UTC)
    try:
        with transaction.atomic():  # a savepoint: the unique violation must not poison the caller's transaction
            SeenAssertion.objects.create(connection=connection, assertion_id=assertion_id, expires_at=expires_at)
    except IntegrityError as exc:
        raise SSOError("replay", "This sign-in response was already used.") from exc


# --- claims ---------------------------------------------------------------------------------------


def _assertion_from_claims(connection: SSOConnection, claims: dict[str, Any]) -> Assertion:
    """Map the verified claims through the connection's attribute mapping."""
    mapping = dict(DEFAULT_CLAIM_MAPPING)
    for field, claim in (connection.attribute_mapping or {}).items():
        if field in mapping and isinstance(claim, str) and claim.strip():
            mapping[field] = claim.strip()

    email = _claim(claims, mapping["email"])
    if not isinstance(email, str) or not email.strip():
        raise SSOError("claims", f"The identity provider sent no e-mail address (claim {mapping['email']!r}).")
    email = email.strip()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise SSOError("claims", "The identity provider sent an e-mail address that is not valid.") from exc
    # Whatever claim carries the address, the IdP must say it verified it (the address links
    # accounts): a missing or false email_verified is refused. A connection whose IdP never sends
    # the claim may say so (``email_verified_not_sent``, off by default); an explicit false is
    # refused even then. Some providers send the boolean as a string.
    verified = claims.get("email_verified")
    if isinstance(verified, str):
        verified = {"true": True, "false": False}.get(verified.strip().lower())
    if verified is False:
        raise SSOError("claims", "The identity provider says this e-mail address is not verified.")
    if verified is not True and not (connection.config or {}).get("email_verified_not_sent"):
        raise SSOError(
            "claims",
            "The identity provider did not say that this e-mail address is verified (no email_verified claim).",
        )

    amr = _strings(claims.get("amr"))
    acr = claims.get("acr") if isinstance(claims.get("acr"), str) else ""
    mfa_acr_values = (connection.config or {}).get("mfa_acr_values") or []
    mfa_asserted = any(value in MFA_AMR_VALUES for value in amr) or bool(acr and acr in mfa_acr_values)
    context = []
    if acr:
        context.append(f"acr={acr}")
    if amr:
        context.append("amr=" + ",".join(amr))

    return Assertion(
        subject=claims["sub"],
        email=email,
        first_name=_text(_claim(claims, mapping["first_name"])),
        last_name=_text(_claim(claims, mapping["last_name"])),
        groups=tuple(dict.fromkeys(_strings(_claim(claims, mapping["groups"])))),
        mfa_asserted=mfa_asserted,
        authn_context="; ".join(context),
        attributes=dict(claims),
    )


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by exact name, else by dotted path (Keycloak's ``realm_access.roles``); ``None`` if absent."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _strings(value: Any) -> list[str]:
    """A claim that should be a list of strings: a single string counts as a one-item list; others are dropped."""
    if isinstance(value, str):
        return [value] if value else []
    if isinstance(value, list):
        return [item for item in value if isinstance(item, str) and item]
    return []


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


# --- HTTP -----------------------------------------------------------------------------------------


class _FetchError(Exception):
    """A request to the provider that failed; the message completes a sentence about the URL."""


def _url_problem(url: str) -> str | None:
    """Why ``url`` may not be used to reach a provider (completes “The … ”), or ``None`` when it may."""
    problem = netfetch.url_problem(url, policy=netfetch.FetchPolicy.from_settings())
    return problem.message if problem else None


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
