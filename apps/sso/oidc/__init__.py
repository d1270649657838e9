"""OpenID Connect relying party (code flow with PKCE), in layers that import downward only.

- ``protocol``: the rules on values already fetched or received: discovery document checks,
  callback state / error / issuer checks, JWKS keys, ID token verification, claims → ``Assertion``
  (pure; no network, no database).
- ``binding``: HTTP in and out: ``discover`` (fetch), ``begin`` (the redirect to the provider),
  ``complete`` (the callback, the token call, the JWKS download, all through ``apps.core.netfetch``);
  applies the replay store (``apps.sso.replay``).

The names below are the package's public face; callers import them from ``apps.sso.oidc``.
"""

from __future__ import annotations

from apps.sso.oidc.binding import (
    MAX_DISCOVERY_BYTES,
    MAX_JWKS_BYTES,
    MAX_TOKEN_RESPONSE_BYTES,
    begin,
    clear_jwks_cache,
    complete,
    discover,
)
from apps.sso.oidc.protocol import (
    DEFAULT_CLAIM_MAPPING,
    DISCOVERY_REQUIRED_FIELDS,
    MFA_AMR_VALUES,
    SAFE_SIGNING_ALGORITHMS,
    STATE_MAX_AGE_SECONDS,
    TOKEN_AUTH_METHODS,
)

__all__ = [
    "DEFAULT_CLAIM_MAPPING",
    "DISCOVERY_REQUIRED_FIELDS",
    "MAX_DISCOVERY_BYTES",
    "MAX_JWKS_BYTES",
    "MAX_TOKEN_RESPONSE_BYTES",
    "MFA_AMR_VALUES",
    "SAFE_SIGNING_ALGORITHMS",
    "STATE_MAX_AGE_SECONDS",
    "TOKEN_AUTH_METHODS",
    "begin",
    "clear_jwks_cache",
    "complete",
    "discover",
]
