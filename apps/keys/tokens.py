"""Access tokens: JWTs in the RFC 9068 profile, issued by the token endpoint, verified by the runtime API.

Public: ``verify_access_token(token, *, audience) -> TokenContext``, raising
``TokenError``. The other floor-3 apps and the API face call only this.

Verification is cached per process, keyed by the whole token string (never by
``jti`` alone: a forged token reusing a cached ``jti`` must not be a hit), until
the token's ``exp``. What can end a token before ``exp`` is re-checked on every
call, warm or cold, through one shared-cache read (``cache.get_many``):

- the client's state (``client_state_key``): disabled, or tokens issued before
  ``tokens_not_before`` (set by a disable), are refused at once in every process;
- the signing key ring's version: a revoked ``kid`` is refused at once;
- the tenant's access version (``apps.access.permsets.version_cache_key``),
  published on commit of every role, binding or grant change: it is handed
  out as ``TokenContext.access_version`` so a process that keeps subjects
  across calls (the API face) keys its permission sets by it and sees a
  revoked grant on the very next call, at no extra round trip.

A value missing from the shared cache is read from the database and put back,
so eviction costs a query, never a wrong answer. Each refusal is audited
individually (``apiclient.token_rejected``): on the tenant's chain when the
signature was good (the tenant is then known), on the platform chain otherwise
(an unverified ``tid`` is the attacker's word, so it never picks a chain).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jwt
from django.core.cache import cache

from apps.access import permsets
from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record
from apps.keys import conf, signing
from apps.keys.models import ApiClient, TokenPolicy
from apps.tenants.models import Tenant

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a JOSE header value  # RFC 9068 §2.1: the ``typ`` header of an access token
# Scopes a token can carry; a request without ``scope`` gets all of them. The API face maps
# endpoints to scopes; new endpoints (metering, budgets) add theirs here.
API_SCOPES: tuple[str, ...] = ("authorize", "tool-calls", "me", "usage", "budget")
REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "iat", "jti", "client_id", "tid"]
VERIFIED_CACHE_SIZE = 50_000
CLIENT_CACHE_SIZE = 10_000
# The shared client state expires by itself: should a write on commit be lost (the cache was
# unreachable), the database is read again within this time instead of never.
STATE_TTL = 300


class TokenError(Exception):
    """A refused access token. ``code`` is the RFC 6750 error; ``reason`` a stable short name for logs and tests."""

    def __init__(self, code: str, description: str, *, reason: str = "invalid") -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenContext:
    """Who a verified token speaks for. ``client.tenant`` is ``tenant``; the tenant comes from the token only."""

    client: ApiClient
    tenant: Tenant
    scopes: frozenset[str]
    audiences: tuple[str, ...]
    jti: str
    exp: int
    kid: str
    # The tenant's committed access version as published in the shared cache (read with the client state).
    access_version: int = 0
    # Requests a minute: the client's own limit and its tenant's (None = not set; the API face has the default).
    client_rate_limit: int | None = None
    tenant_rate_limit: int | None = None

    @property
    def client_id(self) -> str:
        return self.client.client_id


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    token_type: str = "Bearer"  # noqa: S105 - the OAuth token type


@dataclass(frozen=True, slots=True)
class _Verified:
    client_id: str
    tenant_id: int
    scopes: frozenset[str]
    audiences: tuple[str, ...]
    jti: str
    exp: int
    iat: int
    kid: str


@dataclass(frozen=True, slots=True)
class ClientState:
    """What the token check needs to know about a client, shared by every process."""

    status: str
    not_before: float  # tokens issued before this (epoch seconds) are refused
    version: int  # moves with every change of the client; keys the per-process client cache


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size
        self.lock = threading.Lock()

    def put(self, key: Any, value: Any) -> None:
        with self.lock:
            self[key] = value
            self.move_to_end(key)
            while len(self) > self.size:
                self.popitem(last=False)


_verified: _LRU = _LRU(VERIFIED_CACHE_SIZE)
# client_id -> (state version, ApiClient with tenant, the tenant policy's rate limit or None)
_clients: _LRU = _LRU(CLIENT_CACHE_SIZE)


def client_state_key(client_id: str) -> str:
    return f"keys:client:{client_id}"


def client_state_of(client: ApiClient, *, version: int | None = None) -> ClientState:
    not_before = client.tokens_not_before.timestamp() if client.tokens_not_before else 0.0
    return ClientState(status=client.status, not_before=not_before, version=version or time.time_ns())


def publish_client_state(client: ApiClient) -> None:
    """Put the client's state in the shared cache (call on commit of every change to the client)."""
    cache.set(client_state_key(client.client_id), client_state_of(client), STATE_TTL)
    _clients.pop(client.client_id, None)


def clear_local_caches() -> None:
    """Forget verified tokens, clients and the key ring of this process (tests, key revocation)."""
    _verified.clear()
    _clients.clear()
    signing.forget_ring()


# --- issuing -----------------------------------------------------------------


def issue(*, client: ApiClient, audience: str, scopes: tuple[str, ...], lifetime: int) -> IssuedToken:
    """Sign an access token for ``client`` (already authenticated, audience and scopes already checked)."""
    kid, private = signing.signer(client.signing_alg)
    now = int(time.time())
    claims = {
        "iss": conf.issuer(),
        "sub": client.client_id,
        "aud": audience,
        "exp": now + lifetime,
        "iat": now,
        "nbf": now,
        "jti": secrets.token_urlsafe(16),
        "client_id": client.client_id,
        "scope": " ".join(scopes),
        "tid": client.tenant_id,
    }
    token = jwt.encode(claims, private, algorithm=client.signing_alg, headers={"kid": kid, "typ": TOKEN_TYPE})
    return IssuedToken(access_token=token, expires_in=lifetime, scope=claims["scope"])


# --- verifying ---------------------------------------------------------------


def verify_access_token(token: str, *, audience: str) -> TokenContext:
    """The verified context of a bearer ``token`` for ``audience``; raises TokenError (audited).

    Checks: signature by a published, unrevoked key of the ring (``alg`` from
    the key, never from the token: no ``none``, no HS256-with-the-public-key),
    ``typ`` at+jwt, ``iss``, required claims, ``exp`` (no leeway) and ``nbf``/
    ``iat`` (``conf.CLOCK_LEEWAY``), ``aud`` contains ``audience``, the client
    exists in the token's tenant, is active and was not disabled after the
    token was issued. Warm (token seen before in this process): no database
    query, one shared-cache read.
    """
    now = time.time()
    entry: _Verified | None = _verified.get(token)
    if entry is None:
        entry = _verify_cold(token, now)
        _verified.put(token, entry)
    if entry.exp <= now:
        _verified.pop(token, None)
        raise _refuse("expired", "The access token has expired.", entry)
    if audience not in entry.audiences:
        raise _refuse("wrong_audience", "The access token is not meant for this audience.", entry)
    state_key = client_state_key(entry.client_id)
    version_key = permsets.version_cache_key(entry.tenant_id)
    shared = cache.get_many([signing.RING_VERSION_KEY, state_key, version_key])
    ring = signing.ring(shared.get(signing.RING_VERSION_KEY), have_version=True)
    if ring.valid(entry.kid, now) is None:
        _verified.pop(token, None)
        raise _refuse("revoked_key", "The access token's signing key is no longer valid.", entry)
    state: ClientState | None = shared.get(state_key)
    loaded = _client(entry.client_id, state)
    if loaded is None or loaded[0].tenant_id != entry.tenant_id:
        raise _refuse("unknown_client", "The access token's client does not exist.", entry)
    client, tenant_rate_limit = loaded
    state = state or client_state_of(client)
    if state.status != ApiClient.Status.ACTIVE or entry.iat < state.not_before:
        raise _refuse("revoked_client", "The access token's client is disabled.", entry)
    access_version = shared.get(version_key)
    if not isinstance(access_version, int):  # evicted or never published: the tenant row, once, and put back
        access_version = permsets.published_version_load(entry.tenant_id)
    return TokenContext(
        access_version=access_version,
        client_rate_limit=client.rate_limit_per_minute,
        tenant_rate_limit=tenant_rate_limit,
        client=client,
        tenant=client.tenant,
        scopes=entry.scopes,
        audiences=entry.audiences,
        jti=entry.jti,
        exp=entry.exp,
        kid=entry.kid,
    )


def _client(client_id: str, state: ClientState | None) -> tuple[ApiClient, int | None] | None:
    """The client with its tenant and the tenant's rate limit: the process cache when its version is the shared one.

    Otherwise the database (two queries). A change of the tenant policy
    publishes a new state for each of the tenant's clients, so the limit
    cached here moves with it.
    """
    cached = _clients.get(client_id)
    if cached is not None and state is not None and cached[0] == state.version:
        return cached[1], cached[2]
    client = ApiClient.objects.select_related("tenant").filter(client_id=client_id).first()
    if client is None:
        return None
    tenant_limit = (
        TokenPolicy.objects.for_tenant(client.tenant_id).values_list("rate_limit_per_minute", flat=True).first()
    )
    if state is None:
        state = client_state_of(client)
        cache.set(client_state_key(client_id), state, STATE_TTL)
    _clients.put(client_id, (state.version, client, tenant_limit))
    return client, tenant_limit


def _verify_cold(token: str, now: float) -> _Verified:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise _refuse("malformed", "The access token is not a well-formed JWT.") from None
    kid, alg = header.get("kid"), header.get("alg")
    if header.get("typ") != TOKEN_TYPE:
        raise _refuse("malformed", "The token is not an access token (typ at+jwt).")
    if alg not in signing.ALGORITHMS or not isinstance(kid, str):
        raise _refuse("bad_algorithm", "The access token's algorithm is not accepted.")
    key = signing.ring().valid(kid, now)
    if key is None:
        raise _refuse("unknown_key", "The access token's signing key is unknown or no longer valid.")
    if key.alg != alg:
        raise _refuse("bad_algorithm", "The access token's algorithm does not match its key.")
    try:
        claims = jwt.decode(
            token,
            key.public_key,
            algorithms=[key.alg],  # the key's algorithm, never the token's choice
            issuer=conf.issuer(),
            leeway=conf.CLOCK_LEEWAY,
            options={"require": REQUIRED_CLAIMS, "verify_aud": False, "verify_exp": False},
        )
    except jwt.InvalidIssuerError:
        raise _refuse("wrong_issuer", "The access token was issued by someone else.") from None
    except jwt.InvalidSignatureError:
        raise _refuse("bad_signature", "The access token's signature is not valid.") from None
    except jwt.PyJWTError as exc:
        raise _refuse("malformed", f"The access token is not valid ({type(exc).__name__}).") from None
    # exp is checked here without leeway (PyJWT would add it) and on every warm use.
    exp, tid, client_id = claims["exp"], claims["tid"], claims["client_id"]
    aud = claims["aud"]
    audiences = (aud,) if isinstance(aud, str) else tuple(a for a in aud if isinstance(a, str))
    if not (isinstance(exp, int) and isinstance(tid, int) and isinstance(client_id, str)):
        raise _refuse("malformed", "The access token's claims have the wrong types.")
    entry = _Verified(
        client_id=client_id,
        tenant_id=tid,
        scopes=frozenset(str(claims.get("scope") or "").split()),
        audiences=audiences,
        jti=str(claims["jti"]),
        exp=exp,
        iat=int(claims["iat"]),
        kid=kid,
    )
    if claims["sub"] != client_id:
        raise _refuse("malformed", "The access token's subject is not its client.", entry)
    return entry


def _refuse(reason: str, description: str, entry: _Verified | None = None) -> TokenError:
    """Audit one refusal and return the error to raise.

    Only a token whose signature was verified (``entry``) names a tenant and
    client the record trusts; otherwise the event goes on the platform chain.
    """
    metadata: dict[str, Any] = {"reason": reason}
    if entry is not None:
        metadata.update(client_id=entry.client_id, jti=entry.jti, audience=list(entry.audiences), kid=entry.kid)
        actor = Actor(AuditEvent.ActorType.API_CLIENT, entry.client_id, entry.client_id)
    else:
        actor = Actor.anonymous("bearer token")
    record(
        "apiclient.token_rejected",
        tenant=entry.tenant_id if entry is not None and _tenant_exists(entry.tenant_id) else None,
        actor=actor,
        target_type="api_client",
        target_id=entry.client_id if entry is not None else "",
        result=AuditEvent.Result.FAILURE,
        metadata=metadata,
    )
    return TokenError("invalid_token", description, reason=reason)


def _tenant_exists(tenant_id: int) -> bool:
    # A signed token of a deleted tenant: its chain is gone, the platform chain takes the event.
    return Tenant.objects.filter(pk=tenant_id).exists()
