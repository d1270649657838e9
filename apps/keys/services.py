"""Writes of the keys app: API clients and their secrets, the token policy, signing keys, token issuing.

Every write is keyword-only, atomic and audited. A change to a client
publishes its new state to the shared cache on commit
(``tokens.publish_client_state``), which is how a disable ends the client's
tokens at once in every process. Handing a role or an object grant to a client
passes the same no-escalation rule as handing it to a member
(``apps.access.escalation``): nobody creates a client holding more than they hold.
"""

from __future__ import annotations

import functools
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from apps.access import permsets
from apps.access.escalation import (
    AccessError,
    ensure_may_hand_out_builtin_role,
    ensure_may_hand_out_role,
    ensure_no_escalation,
)
from apps.access.models import Role
from apps.access.services import object_permission
from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record
from apps.core import context
from apps.keys import conf, crypto, signing, tokens
from apps.keys.models import MAX_TOKEN_LIFETIME, ApiClient, ClientSecret, SigningKey, TokenPolicy
from apps.keys.usage import token_use_record  # noqa: F401 - the API face's flush calls it here
from apps.tenants.models import Membership, Tenant

CLIENT_ID_PREFIX = "bc_"
SECRET_PREFIX = "bcs_"  # noqa: S105 - a marker that makes leaked secrets greppable, not a secret


class KeysError(ValueError):
    """A change the keys rules refuse; the message is meant for the user."""


class ClientAuthError(Exception):
    """Client authentication failed (unknown client, wrong or expired secret, disabled client)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokenRequestError(Exception):
    """A token request the server refuses after authenticating the client (RFC 6749 §5.2 code)."""

    def __init__(self, code: str, description: str) -> None:
        super().__init__(description)
        self.code = code
        self.description = description


@dataclass(frozen=True, slots=True)
class CreatedClient:
    """A new client and its secret: the only time the plain secret exists outside the caller."""

    client: ApiClient
    secret: str


def _actor(actor: Membership | None) -> Actor:
    if actor is None:
        return Actor.from_context()
    return Actor.for_user(actor.user)


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)  # 256 random bits


def _store_secret(client: ApiClient, secret: str) -> ClientSecret:
    return ClientSecret.objects.create(
        tenant_id=client.tenant_id, client=client, digest=crypto.secret_digest(secret), hint=secret[-4:]
    )


def _publish_on_commit(client: ApiClient) -> None:
    transaction.on_commit(functools.partial(tokens.publish_client_state, client))


def _check_role(*, actor: Membership | None, tenant: Tenant, builtin_role: str, role: Role | None) -> None:
    if bool(builtin_role) == (role is not None):
        raise KeysError("Choose exactly one role for the client: a built-in role or a custom role.")
    if role is not None:
        if role.tenant_id != tenant.pk:
            raise KeysError("That role belongs to another tenant.")
        ensure_may_hand_out_role(actor=actor, role=role)
    else:
        ensure_may_hand_out_builtin_role(actor=actor, tenant=tenant, key=builtin_role)


def _check_audiences(audiences: list[str]) -> list[str]:
    clean = sorted({a.strip() for a in audiences if a.strip()})
    for audience in clean:
        if len(audience) > 200 or any(ch.isspace() for ch in audience):
            raise KeysError(f"Audience {audience[:40]!r} is not valid: one URI or name per line, no spaces.")
    return clean


@transaction.atomic
def apiclient_create(
    *,
    tenant: Tenant,
    name: str,
    builtin_role: str = "",
    role: Role | None = None,
    audiences: list[str] | None = None,
    signing_alg: str = "ES256",
    actor: Membership | None = None,
) -> CreatedClient:
    """Create an API client of ``tenant`` acting as one role; returns it with its secret (shown once).

    Raises KeysError (bad input, taken name) or AccessError (``actor`` does not
    hold everything the role carries).
    """
    name = name.strip()
    if not name:
        raise KeysError("Give the client a name.")
    if signing_alg not in signing.ALGORITHMS:
        raise KeysError(f"Unsupported signing algorithm {signing_alg!r}.")
    _check_role(actor=actor, tenant=tenant, builtin_role=builtin_role, role=role)
    if ApiClient.objects.for_tenant(tenant).filter(name__iexact=name).exists():
        raise KeysError(f"A client named “{name}” already exists.")
    client_id = CLIENT_ID_PREFIX + secrets.token_urlsafe(18)
    client = ApiClient.objects.create(
        tenant=tenant,
        name=name,
        client_id=client_id,
        builtin_role=builtin_role,
        role=role,
        audiences=_check_audiences(audiences or []),
        signing_alg=signing_alg,
        group=Group.objects.create(name=f"tenant:{tenant.pk}:apiclient:{client_id}"),
        created_by=actor.user if actor is not None else None,
    )
    secret = _new_secret()
    _store_secret(client, secret)
    record(
        "apiclient.create",
        tenant=tenant,
        actor=_actor(actor),
        target=client,
        metadata={
            "name": name,
            "client_id": client_id,
            "role": role.key if role else builtin_role,
            "audiences": client.audiences,
            "alg": signing_alg,
        },
    )
    _publish_on_commit(client)
    return CreatedClient(client=client, secret=secret)


@transaction.atomic
def apiclient_secret_rotate(
    *, client: ApiClient, overlap: timedelta | None = None, actor: Membership | None = None
) -> str:
    """Add a new secret; the valid old one(s) stay valid for ``overlap`` (default setting), then end.

    Returns the new secret (shown once). ``overlap`` zero ends the old ones now.
    """
    locked = ApiClient.objects.select_for_update().get(pk=client.pk)
    if overlap is None:
        overlap = timedelta(hours=conf.secret_overlap_hours())
    if overlap < timedelta(0) or overlap > timedelta(days=30):
        raise KeysError("The overlap must be between 0 and 30 days.")
    now = timezone.now()
    ends = now + overlap
    # Old secrets end at the overlap, or sooner if they were already due to.
    _valid_secrets(locked, now).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=ends)).update(expires_at=ends)
    secret = _new_secret()
    stored = _store_secret(locked, secret)
    record(
        "apiclient.secret_rotate",
        tenant=locked.tenant_id,
        actor=_actor(actor),
        target=locked,
        metadata={"new_secret": f"…{stored.hint}", "old_valid_until": ends.isoformat()},
    )
    return secret


@transaction.atomic
def apiclient_secret_revoke(*, secret: ClientSecret, actor: Membership | None = None) -> None:
    """End one secret now (e.g. the old one once every deployment has the new). Tokens already issued run out."""
    locked = ClientSecret.objects.select_for_update().get(pk=secret.pk)
    if locked.revoked_at is None:
        locked.revoked_at = timezone.now()
        locked.save(update_fields=["revoked_at"])
        record(
            "apiclient.secret_revoke",
            tenant=locked.tenant_id,
            actor=_actor(actor),
            target_type="apiclient",
            target_id=locked.client_id,
            metadata={"secret": f"…{locked.hint}"},
        )


@transaction.atomic
def apiclient_disable(*, client: ApiClient, actor: Membership | None = None, reason: str = "") -> ApiClient:
    """Disable ``client``: no new token, and every token it holds is refused from the next check on."""
    locked = ApiClient.objects.select_for_update().get(pk=client.pk)
    now = timezone.now()
    locked.status = ApiClient.Status.DISABLED
    locked.disabled_at = now
    # Whole seconds (``iat`` is in seconds): a token issued in this same second is refused too.
    locked.tokens_not_before = now.replace(microsecond=0) + timedelta(seconds=1)
    locked.save(update_fields=["status", "disabled_at", "tokens_not_before"])
    permsets.bump_version(locked.tenant_id)  # its decisions end with it
    record(
        "apiclient.disable", tenant=locked.tenant_id, actor=_actor(actor), target=locked, metadata={"reason": reason}
    )
    _publish_on_commit(locked)
    return locked


@transaction.atomic
def apiclient_enable(*, client: ApiClient, actor: Membership | None = None) -> ApiClient:
    """Enable a disabled client again; tokens issued before its disable stay refused.

    The enabling actor must hold what the client's role carries (as on create).
    """
    locked = ApiClient.objects.select_for_update(of=("self",)).select_related("role").get(pk=client.pk)
    _check_role(actor=actor, tenant=locked.tenant, builtin_role=locked.builtin_role, role=locked.role)
    locked.status = ApiClient.Status.ACTIVE
    locked.save(update_fields=["status"])
    permsets.bump_version(locked.tenant_id)
    record("apiclient.enable", tenant=locked.tenant_id, actor=_actor(actor), target=locked)
    _publish_on_commit(locked)
    return locked


def _valid_secrets(client: ApiClient, now: Any) -> Any:
    return ClientSecret.objects.for_tenant(client.tenant_id).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now), client=client, revoked_at__isnull=True
    )


# --- object grants to a client -----------------------------------------------------------------


@transaction.atomic
def apiclient_grant_assign(*, client: ApiClient, action: str, obj: Any, actor: Membership | None = None) -> None:
    """Grant ``action`` on one object of the client's tenant to the client (as ``grant_assign`` does for a member)."""
    if obj.tenant_id != client.tenant_id:
        raise AccessError("Grants cannot cross tenants.")
    ensure_no_escalation(actor=actor, tenant=obj.tenant, grants=[(action, obj)])
    assign_perm(object_permission(action, obj), client.group, obj)
    permsets.bump_version(client.tenant_id)
    record(
        "grant.add",
        tenant=client.tenant_id,
        actor=_actor(actor),
        target=obj,
        metadata={"action": action, "api_client": client.client_id},
    )


@transaction.atomic
def apiclient_grant_revoke(*, client: ApiClient, action: str, obj: Any, actor: Membership | None = None) -> None:
    """Revoke a grant made by ``apiclient_grant_assign``; takes effect on the next decision."""
    remove_perm(object_permission(action, obj), client.group, obj)
    permsets.bump_version(client.tenant_id)
    record(
        "grant.remove",
        tenant=client.tenant_id,
        actor=_actor(actor),
        target=obj,
        metadata={"action": action, "api_client": client.client_id},
    )


# --- token policy ------------------------------------------------------------------------------


def token_lifetime(*, tenant_id: int) -> int:
    """The tenant's access-token lifetime in seconds (at most 15 minutes)."""
    value = TokenPolicy.objects.for_tenant(tenant_id).values_list("token_lifetime", flat=True).first()
    return min(value or MAX_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME)


MAX_RATE_LIMIT = 1_000_000  # requests a minute; a typo guard, not a product limit


def _check_rate_limit(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= MAX_RATE_LIMIT:
        raise KeysError(f"A rate limit must be between 1 and {MAX_RATE_LIMIT:,} requests a minute (or empty).")
    return value


@transaction.atomic
def token_policy_set(
    *,
    tenant: Tenant,
    token_lifetime: int,
    rate_limit_per_minute: int | None = None,
    actor: Membership | None = None,
) -> TokenPolicy:
    """Set the tenant's token lifetime (60 s to 15 min) and its clients' default API rate limit (None: the default).

    Raises KeysError outside those ranges. Every client of the tenant gets a new
    shared state on commit, so each process reloads it with the new limit.
    """
    if not 60 <= token_lifetime <= MAX_TOKEN_LIFETIME:
        raise KeysError(f"The token lifetime must be between 60 and {MAX_TOKEN_LIFETIME} seconds.")
    _check_rate_limit(rate_limit_per_minute)
    policy, _ = TokenPolicy.objects.update_or_create(
        tenant=tenant, defaults={"token_lifetime": token_lifetime, "rate_limit_per_minute": rate_limit_per_minute}
    )
    for client in ApiClient.objects.for_tenant(tenant).only("client_id", "status", "tokens_not_before"):
        _publish_on_commit(client)
    record(
        "apiclient.token_policy",
        tenant=tenant,
        actor=_actor(actor),
        target=policy,
        metadata={"token_lifetime": token_lifetime, "rate_limit_per_minute": rate_limit_per_minute},
    )
    return policy


@transaction.atomic
def apiclient_rate_limit_set(
    *, client: ApiClient, rate_limit_per_minute: int | None, actor: Membership | None = None
) -> ApiClient:
    """Set the client's own API rate limit (None: the tenant's, else the default); every process sees it at once."""
    _check_rate_limit(rate_limit_per_minute)
    locked = ApiClient.objects.select_for_update().get(pk=client.pk)
    before = locked.rate_limit_per_minute
    locked.rate_limit_per_minute = rate_limit_per_minute
    locked.save(update_fields=["rate_limit_per_minute"])
    _publish_on_commit(locked)
    record(
        "apiclient.rate_limit",
        tenant=locked.tenant_id,
        actor=_actor(actor),
        target=locked,
        metadata={"client_id": locked.client_id, "before": before, "after": rate_limit_per_minute},
    )
    return locked


# --- the token endpoint ------------------------------------------------------------------------


def client_authenticate(*, client_id: str, secret: str) -> ApiClient:
    """The active client whose valid secret ``secret`` is; raises ClientAuthError (the caller audits and limits).

    Every candidate secret is compared in constant time; an unknown client id
    still computes one digest, so timing does not tell which ids exist.
    """
    client = (
        ApiClient.objects.select_related("tenant").filter(client_id=client_id).first()
        if client_id.isascii() and len(client_id) <= 64
        else None
    )
    if client is None:
        crypto.secret_matches(secret, "0" * 64)
        raise ClientAuthError("unknown_client")
    digests = list(_valid_secrets(client, timezone.now()).values_list("digest", flat=True))
    matched = False
    for digest in digests or ["0" * 64]:
        matched |= crypto.secret_matches(secret, digest)
    if not matched:
        raise ClientAuthError("bad_secret" if digests else "no_valid_secret")
    if client.status != ApiClient.Status.ACTIVE:
        raise ClientAuthError("disabled_client")
    if client.tenant.is_suspended:
        raise ClientAuthError("suspended_tenant")
    return client


def client_auth_failed(*, client_id: str, reason: str) -> None:
    """Audit one failed client authentication (on the client's tenant chain when the id is known)."""
    tenant_id = (
        ApiClient.objects.filter(client_id=client_id).values_list("tenant_id", flat=True).first()
        if client_id.isascii() and len(client_id) <= 64
        else None
    )
    record(
        "apiclient.auth_failed",
        tenant=tenant_id,
        actor=Actor(AuditEvent.ActorType.API_CLIENT, client_id[:64], client_id[:64]),
        target_type="api_client",
        target_id=client_id[:64],
        result=AuditEvent.Result.FAILURE,
        metadata={"reason": reason},
    )


def token_issue(*, client: ApiClient, audience: str = "", scope: str = "") -> tokens.IssuedToken:
    """An access token for an authenticated ``client``; raises TokenRequestError (invalid_target, invalid_scope)."""
    allowed = client.audiences or [conf.default_audience()]
    audience = audience or allowed[0]
    if audience not in allowed:
        raise TokenRequestError("invalid_target", "The client may not ask for a token for that audience.")
    requested = tuple(dict.fromkeys(scope.split())) if scope else tokens.API_SCOPES
    unknown = [s for s in requested if s not in tokens.API_SCOPES]
    if unknown:
        raise TokenRequestError("invalid_scope", f"Unknown scope: {' '.join(unknown)[:100]}.")
    lifetime = token_lifetime(tenant_id=client.tenant_id)
    try:
        issued = tokens.issue(client=client, audience=audience, scopes=requested, lifetime=lifetime)
    except signing.NoActiveKeyError:
        signing_key_bootstrap(alg=client.signing_alg)
        issued = tokens.issue(client=client, audience=audience, scopes=requested, lifetime=lifetime)
    # At most one write a minute per client: last use is for people, not an exact log.
    now = timezone.now()
    ApiClient.objects.filter(
        Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - timedelta(minutes=1)), pk=client.pk
    ).update(last_used_at=now)
    return issued


# --- signing keys --------------------------------------------------------------------------------


def _create_key(*, alg: str, status: str, activates_at: Any) -> SigningKey:
    pem, jwk, kid = signing.generate(alg)
    now = timezone.now()
    return SigningKey.objects.create(
        kid=kid,
        alg=alg,
        public_jwk=jwk,
        private_key=crypto.encrypt(pem),
        status=status,
        activates_at=activates_at,
        activated_at=now if status == SigningKey.Status.ACTIVE else None,
    )


@transaction.atomic
def signing_key_bootstrap(*, alg: str) -> SigningKey:
    """The active key for ``alg``, creating and activating one now if there is none (a fresh installation).

    Activating at once is safe only here: no token exists, so no verifier can
    hold an older JWKS that lacks the key. Concurrent callers meet on the
    one-active-key constraint; the loser reads the winner's key.
    """
    existing = SigningKey.objects.filter(alg=alg, status="active").first()
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            key = _create_key(alg=alg, status=SigningKey.Status.ACTIVE, activates_at=timezone.now())
    except IntegrityError:
        return SigningKey.objects.get(alg=alg, status="active")
    record(
        "signing_key.create",
        actor=Actor.system(),
        target=key,
        metadata={"kid": key.kid, "alg": alg, "status": "active"},
    )
    signing.bump_ring_version()
    return key


@transaction.atomic
def signing_keys_rotate(*, now: Any = None) -> list[str]:
    """One step of the schedule for every algorithm; idempotent, safe to run often. Returns what it did.

    - no active key: create one and activate it (bootstrap);
    - the active key is within ``publish_ahead`` of its end: create the next
      key, published in the JWKS from now, signing from ``activates_at``;
    - the next key's time has come: it signs, the old one retires and stays
      published until the last token it signed has expired;
    - retired keys past that point: their private half is erased.
    """
    now = now or timezone.now()
    period, ahead = timedelta(days=conf.rotation_days()), timedelta(hours=conf.publish_ahead_hours())
    done: list[str] = []
    # Serialise with other runs (one beat, but a manual run may overlap).
    keys = list(SigningKey.objects.select_for_update().filter(status__in=["next", "active", "retired"]))
    for alg in signing.ALGORITHMS:
        active = next((k for k in keys if k.alg == alg and k.status == "active"), None)
        upcoming = next((k for k in keys if k.alg == alg and k.status == "next"), None)
        if active is None:
            if not SigningKey.objects.filter(alg=alg).exists():
                continue  # never used: the first token of that algorithm bootstraps it
            active = _create_key(alg=alg, status="active", activates_at=now)
            done.append(f"{alg}: activated {active.kid} (no active key)")
            continue
        ends = (active.activated_at or active.created_at) + period
        if upcoming is None and now >= ends - ahead:
            upcoming = _create_key(alg=alg, status="next", activates_at=max(ends, now + ahead))
            done.append(f"{alg}: published {upcoming.kid}, signs from {upcoming.activates_at.isoformat()}")
        elif upcoming is not None and now >= upcoming.activates_at:
            _retire(active, now)
            upcoming.status, upcoming.activated_at = "active", now
            upcoming.save(update_fields=["status", "activated_at"])
            done.append(f"{alg}: {upcoming.kid} signs, {active.kid} retired")
    for key in keys:
        if key.status == "retired" and key.publish_until and key.publish_until <= now and key.private_key:
            key.private_key = ""
            key.save(update_fields=["private_key"])
            done.append(f"{key.alg}: {key.kid} unpublished")
    for line in done:
        record(
            "signing_key.rotate", actor=Actor.system("key rotation"), target_type="signing_key", metadata={"step": line}
        )
    if done:
        signing.bump_ring_version()
    return done


def _retire(key: SigningKey, now: Any) -> None:
    key.status, key.retired_at = "retired", now
    # The last token it signed was issued at most now and lives at most MAX_TOKEN_LIFETIME (+ skew).
    key.publish_until = now + timedelta(seconds=MAX_TOKEN_LIFETIME + conf.CLOCK_LEEWAY)
    key.save(update_fields=["status", "retired_at", "publish_until"])


@transaction.atomic
def signing_key_revoke(*, key: SigningKey, reason: str, actor: Any = None) -> SigningKey:
    """Emergency rotation (platform staff): ``key`` is refused at once and unpublished.

    If it was signing, the next key (or a new one) signs from now: verifiers
    that cached the JWKS before may refuse new tokens until they refetch it,
    which is the price of ending a compromised key at once.
    """
    locked = SigningKey.objects.select_for_update().get(pk=key.pk)
    if locked.status == "revoked":
        return locked
    was_active = locked.status == "active"
    now = timezone.now()
    locked.status, locked.revoked_at, locked.revoked_reason, locked.private_key = "revoked", now, reason[:300], ""
    locked.save(update_fields=["status", "revoked_at", "revoked_reason", "private_key"])
    replacement = None
    if was_active:
        replacement = SigningKey.objects.select_for_update().filter(alg=locked.alg, status="next").first()
        if replacement is not None:
            replacement.status, replacement.activated_at = "active", now
            replacement.save(update_fields=["status", "activated_at"])
        else:
            replacement = _create_key(alg=locked.alg, status="active", activates_at=now)
    record(
        "signing_key.revoke",
        actor=Actor.for_user(actor) if actor is not None else Actor.from_context(),
        target=locked,
        metadata={"kid": locked.kid, "reason": reason[:300], "replacement": replacement.kid if replacement else None},
    )
    signing.bump_ring_version()
    return locked


def request_ip() -> str:
    """The caller's address as the request context knows it (rate-limit key)."""
    return context.current().ip or ""
