"""OpenID Connect, relying-party side: the protocol rules, on values already fetched or received.

Pure functions (no network, no database): the discovery document's checks,
the callback's state / error / issuer checks, the JWKS keys and the ID
token's verification (signature, issuer, audience, time, authorized party,
nonce), the mapping of verified claims to an ``Assertion``. Fetching
(discovery, JWKS, token endpoint), the redirect to the provider and the replay
store are in ``apps.sso.oidc.binding``. Refusals: ``SSOConfigError`` for a
configuration an administrator must fix, ``SSOError`` with a stable code for a
sign-in.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import jwt
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from apps.core import netfetch
from apps.sso.models import SSOConnection
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


# --- discovery ------------------------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why ``url`` may not be used to reach a provider (completes “The … ”), or ``None`` when it may.

    The same rule the fetcher applies (``apps.core.netfetch.url_problem``: scheme, port, address
    literals), checked before anything is stored or fetched; no name is resolved here.
    """
    problem = netfetch.url_problem(url, policy=netfetch.FetchPolicy.from_settings())
    return problem.message if problem else None


def check_issuer(issuer: str) -> None:
    """Raise ``SSOConfigError`` unless ``issuer`` can be the base of a discovery URL."""
    if not isinstance(issuer, str) or not issuer.strip():
        raise SSOConfigError("The issuer is empty.")
    problem = url_problem(issuer)
    if problem:
        raise SSOConfigError(f"The issuer {problem}.")
    parts = urlsplit(issuer)
    if parts.query or parts.fragment:
        raise SSOConfigError("The issuer must not contain a query string or fragment.")


def validate_discovery(document: dict[str, Any], issuer: str) -> None:
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
        problem = url_problem(value)
        if problem:
            raise SSOConfigError(f"The discovery document's {name} {problem}.")
    response_types = document["response_types_supported"]
    if not isinstance(response_types, list) or "code" not in response_types:
        raise SSOConfigError("The discovery document's response_types_supported does not include “code”.")
    if not allowed_algorithms(document):
        raise SSOConfigError(
            "The discovery document's id_token_signing_alg_values_supported has none of "
            + ", ".join(SAFE_SIGNING_ALGORITHMS)
            + "."
        )


def allowed_algorithms(discovery: Mapping[str, Any]) -> list[str]:
    """The provider's ID token algorithms that we accept, in our order of preference."""
    offered = discovery.get("id_token_signing_alg_values_supported")
    if not isinstance(offered, list):
        return []
    return [alg for alg in SAFE_SIGNING_ALGORITHMS if alg in offered]


# --- the callback ---------------------------------------------------------------------------------


def check_callback(
    connection: SSOConnection,
    *,
    params: Mapping[str, Any],
    state_blob: Mapping[str, Any],
    discovery: Mapping[str, Any],
    leeway: int,
) -> tuple[dict[str, Any], str]:
    """The checked state blob and the authorization code of a callback, or ``SSOError``.

    Order matters: the state first, even for error responses (they carry it
    too), or anyone could send a user to our callback with an
    error_description of their choosing and have us display it.
    """
    blob = checked_blob(connection, state_blob)
    state = param(params, "state")
    if state is None or not hmac.compare_digest(state.encode(), blob["state"].encode()):
        raise SSOError("state", "The sign-in response does not belong to this browser's sign-in attempt.")

    error = param(params, "error")
    if error is not None:
        description = param(params, "error_description") or ""
        detail = printable(f"{error}: {description}" if description else error)
        raise SSOError("idp_error", f"The identity provider refused the sign-in ({detail}).")

    age = time.time() - blob["created_at"]
    if age > STATE_MAX_AGE_SECONDS or age < -leeway:
        raise SSOError("state", "The sign-in attempt is too old; please start again.")

    # RFC 9207: a provider that names itself in the response must be the one we sent the browser to.
    response_issuer = param(params, "iss")
    if response_issuer is not None and response_issuer != discovery.get("issuer"):
        raise SSOError("issuer", "The sign-in response comes from another identity provider.")
    if response_issuer is None and discovery.get("authorization_response_iss_parameter_supported") is True:
        raise SSOError("issuer", "The sign-in response does not name its identity provider.")

    code = param(params, "code")
    if not code:
        raise SSOError("idp_error", "The identity provider returned no authorization code.")
    return blob, code


def checked_blob(connection: SSOConnection, state_blob: Mapping[str, Any]) -> dict[str, Any]:
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


def param(params: Mapping[str, Any], name: str) -> str | None:
    """One callback parameter as a string; ``None`` when absent. A repeated parameter counts as absent."""
    value = params.get(name)
    if isinstance(value, list | tuple):
        value = value[0] if len(value) == 1 else None
    if value is None:
        return None
    return value if isinstance(value, str) else None


def printable(text: str, limit: int = 200) -> str:
    """Provider-supplied text made safe to show and log: printable characters only, bounded length."""
    return "".join(ch if ch.isprintable() else " " for ch in text)[:limit]


# --- the token endpoint ---------------------------------------------------------------------------


def token_auth_method(connection: SSOConnection, discovery: Mapping[str, Any]) -> str:
    """client_secret_basic or client_secret_post: the connection's choice, else what the provider supports."""
    configured = (connection.config or {}).get("token_endpoint_auth_method")
    if configured in TOKEN_AUTH_METHODS:
        return configured
    # OpenID Connect Discovery: an absent list means client_secret_basic.
    supported = discovery.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
    if "client_secret_basic" not in supported and "client_secret_post" in supported:
        return "client_secret_post"
    return "client_secret_basic"


def id_token_from_response(status: int, payload: Mapping[str, Any]) -> str:
    """The raw ID token of a token-endpoint answer (its JSON object), or ``SSOError("token_exchange")``."""
    if status != 200:
        error = payload.get("error")
        description = payload.get("error_description")
        detail = printable(str(error)) if error else f"HTTP {status}"
        if isinstance(description, str) and description:
            detail += ": " + printable(description)
        raise SSOError("token_exchange", f"The identity provider refused the authorization code ({detail}).")
    id_token = payload.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise SSOError("token_exchange", "The token endpoint returned no ID token.")
    return id_token


# --- keys -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One usable public key from a provider's JWKS."""

    kid: str | None
    kty: str
    alg: str | None  # the JWK's declared algorithm, if any
    key: Any  # a cryptography public key


def parse_jwks(document: Mapping[str, Any]) -> list[SigningKey]:
    """The RSA/EC signature keys of a JWKS document; other keys are left out."""
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
            SigningKey(kid=kid if isinstance(kid, str) else None, kty=entry["kty"], alg=declared_alg, key=parsed.key)
        )
    return keys


def matching_keys(keys: list[SigningKey], *, kid: str | None, alg: str) -> list[SigningKey]:
    """Keys that may have signed a token with this header: right type, compatible declared alg, same kid."""
    kty = "EC" if alg.startswith("ES") else "RSA"
    fitting = [key for key in keys if key.kty == kty and key.alg in (None, alg)]
    if kid is None:
        return fitting
    return [key for key in fitting if key.kid == kid]


# --- the ID token ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenHeader:
    """What an ID token says about its own signature, once the algorithm is one we accept."""

    alg: str
    kid: str | None
    issuer: str


def id_token_header(id_token: str, *, discovery: Mapping[str, Any], client_id: str) -> TokenHeader:
    """Read the (unverified) header; refuse refused algorithms and a configuration that would skip a check."""
    try:
        header = jwt.get_unverified_header(id_token)
    except jwt.PyJWTError as exc:
        raise SSOError("signature", "The ID token is not a well-formed signed token.") from exc
    alg = header.get("alg")
    if alg not in allowed_algorithms(discovery):
        raise SSOError("signature", f"The ID token is signed with an algorithm we refuse ({printable(str(alg), 20)}).")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise SSOError("signature", "The ID token names its key with something that is not a key id.")

    issuer = discovery.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        # PyJWT skips the issuer check when given none: never let a damaged discovery turn it off.
        raise SSOError("issuer", "The identity provider's issuer is not configured.")
    if not client_id:
        raise SSOError("audience", "The client id is not configured.")
    return TokenHeader(alg=alg, kid=kid, issuer=issuer)


def decode_id_token(
    id_token: str,
    *,
    header: TokenHeader,
    candidates: list[SigningKey],
    client_id: str,
    nonce: str,
    leeway: int,
) -> dict[str, Any]:
    """The ID token's claims once signature, issuer, audience, time, authorized party and nonce are checked."""
    claims: dict[str, Any] | None = None
    for candidate in candidates:
        try:
            claims = jwt.decode(
                id_token,
                candidate.key,
                algorithms=[header.alg],
                audience=client_id,
                issuer=header.issuer,
                leeway=leeway,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
            break
        except jwt.InvalidSignatureError:
            continue  # without a kid, several keys may fit: try the next one
        except jwt.PyJWTError as exc:
            raise token_error(exc) from exc
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


def token_error(exc: jwt.PyJWTError) -> SSOError:
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


def replay_key(id_token: str, claims: Mapping[str, Any], *, leeway: int) -> tuple[str, datetime]:
    """The replay-store id of a verified token (its ``jti``, else a hash) and until when it could be accepted."""
    jti = claims.get("jti")
    if isinstance(jti, str) and jti and len(jti) <= 200:
        assertion_id = f"jti:{jti}"
    else:
        assertion_id = "sha256:" + hashlib.sha256(id_token.encode()).hexdigest()
    return assertion_id, datetime.fromtimestamp(int(claims["exp"]) + leeway, tz=UTC)


# --- claims ---------------------------------------------------------------------------------------


def assertion_from_claims(connection: SSOConnection, claims: dict[str, Any]) -> Assertion:
    """Map the verified claims through the connection's attribute mapping."""
    mapping = dict(DEFAULT_CLAIM_MAPPING)
    for field, claim in (connection.attribute_mapping or {}).items():
        if field in mapping and isinstance(claim, str) and claim.strip():
            mapping[field] = claim.strip()
    email = _verified_email(connection, claims, claim_name=mapping["email"])

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


def _verified_email(connection: SSOConnection, claims: Mapping[str, Any], *, claim_name: str) -> str:
    """The asserted e-mail address, valid and said to be verified by the IdP; ``SSOError("claims")`` if not."""
    email = _claim(claims, claim_name)
    if not isinstance(email, str) or not email.strip():
        raise SSOError("claims", f"The identity provider sent no e-mail address (claim {claim_name!r}).")
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
    return email


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
