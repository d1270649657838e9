"""SAML 2.0, service-provider side, in layers that import downward only.

- ``metadata``: IdP metadata and certificates, parsed (pure; no network, no database).
- ``sp``: our side: SP entity id, ACS and SLS URLs, python3-saml settings (strict), SP metadata.
- ``protocol``: Response validation on the decoded document (python3-saml plus our stricter
  checks), one stable error code per failure.
- ``binding``: HTTP in and out: the AuthnRequest redirect, reading the POST to the ACS, the
  logout exchange, metadata downloads through ``apps.core.netfetch``; applies the replay
  store (``apps.sso.replay``).

The names below are the package's public face; callers import them from ``apps.sso.saml``.
"""

from __future__ import annotations

from apps.sso.saml.binding import (
    MAX_RELAY_STATE_BYTES,
    MAX_RESPONSE_BASE64,
    fetch_idp_metadata,
    login_url,
    process_logout,
    process_response,
)
from apps.sso.saml.protocol import CLOCK_SKEW_SECONDS, MFA_AUTHN_CONTEXTS
from apps.sso.saml.sp import (
    ATTRIBUTE_PRESET_LABELS,
    ATTRIBUTE_PRESETS,
    acs_url,
    sls_url,
    sp_entity_id,
    sp_metadata_xml,
    sp_settings,
)

__all__ = [
    "ATTRIBUTE_PRESETS",
    "ATTRIBUTE_PRESET_LABELS",
    "CLOCK_SKEW_SECONDS",
    "MAX_RELAY_STATE_BYTES",
    "MAX_RESPONSE_BASE64",
    "MFA_AUTHN_CONTEXTS",
    "acs_url",
    "fetch_idp_metadata",
    "login_url",
    "process_logout",
    "process_response",
    "sls_url",
    "sp_entity_id",
    "sp_metadata_xml",
    "sp_settings",
]
