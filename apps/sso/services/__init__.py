"""SSO writes: connections, verified domains, sign-in completion (JIT provisioning), test sign-ins.

Every write is keyword-only, atomic and audited with before/after; the OIDC
client secret is stored encrypted (``apps.sso.crypto``) and never enters an
audit event, a log line or a page. Network work (metadata download, OIDC
discovery) happens *before* the transaction opens, so a slow IdP never holds
a row lock, and a configuration that fails validation writes nothing: the
last working configuration stays as it was.

Tenant boundary of sign-in: a connection belongs to one tenant and only ever
creates or activates a membership in that tenant. An identity it has never
seen is linked to a user (existing or new) only when the asserted e-mail's
domain is a *verified* domain of that same tenant, so tenant A's IdP cannot
take over an account whose address lives under tenant B's domain. Platform
staff accounts never sign in through a tenant's IdP.

Refusals the caller may show raise ``SSOInputError`` (configuration, with the
form field it is about) or ``SSOError`` (sign-in, with a stable code that is
audited).

Background services (called by ``apps.sso.tasks``): ``metadata_refresh``
(``connection_metadata_refresh``) and ``notices`` (``notice_enqueue``,
``notice_send``).
"""

from __future__ import annotations

from apps.sso.services._common import (
    ATTRIBUTE_NAME_MAX,
    CLIENT_ID_MAX,
    CLIENT_SECRET_MAX,
    DOMAIN_MAX,
    ENTITY_ID_MAX,
    GROUP_NAME_MAX,
    GROUPS_MAX,
    NAME_MAX,
    SCOPE_RE,
    SCOPES_MAX,
    SUBJECT_MAX,
    URL_MAX,
    SSOInputError,
)
from apps.sso.services.connection_config import (
    DEFAULT_OIDC_SCOPES,
    MAPPING_FIELDS,
    SAML_SOURCES,
    OIDCSettings,
    SAMLSettings,
    attribute_presets,
    clean_attribute_mapping,
    oidc_config_build,
    preset_labels,
    saml_config_build,
)
from apps.sso.services.connections import (
    client_secret,
    connection_create,
    connection_delete,
    connection_request_metadata_refresh,
    connection_set_status,
    connection_staff_disable,
    connection_update,
)
from apps.sso.services.domains import (
    CLAIM_PENDING_DAYS,
    PUBLIC_MAIL_DOMAINS,
    DomainCheck,
    claim_expires_at,
    connection_for_email,
    domain_check,
    domain_claim,
    domain_claims_sweep,
    domain_release,
    domain_verify,
    email_domain,
    normalize_domain,
)
from apps.sso.services.drafts import ABANDONED_AFTER, connection_draft_open, connection_drafts_purge
from apps.sso.services.routing import connection_make_primary, domain_route, primary_ensure
from apps.sso.services.signin import (
    ADMIN_PERMISSIONS,
    ADMIN_ROLES,
    DENIAL_CODES,
    MODEL_BACKEND,
    PENDING_LINK_KEY,
    REMOVED_MESSAGE,
    SESSION_SSO_KEY,
    complete_sign_in,
    identity_link_values,
    pending_link_for,
    record_sign_in_failure,
)
from apps.sso.services.testmode import (
    ATTRIBUTE_VALUE_MAX,
    ATTRIBUTES_SHOWN_MAX,
    TestCheck,
    TestReport,
    connection_test_complete,
    connection_test_fail,
    parse_iso,
)

__all__ = [
    "ABANDONED_AFTER",
    "ADMIN_PERMISSIONS",
    "ADMIN_ROLES",
    "ATTRIBUTES_SHOWN_MAX",
    "ATTRIBUTE_NAME_MAX",
    "ATTRIBUTE_VALUE_MAX",
    "CLAIM_PENDING_DAYS",
    "CLIENT_ID_MAX",
    "CLIENT_SECRET_MAX",
    "DEFAULT_OIDC_SCOPES",
    "DENIAL_CODES",
    "DOMAIN_MAX",
    "ENTITY_ID_MAX",
    "GROUPS_MAX",
    "GROUP_NAME_MAX",
    "MAPPING_FIELDS",
    "MODEL_BACKEND",
    "NAME_MAX",
    "PENDING_LINK_KEY",
    "PUBLIC_MAIL_DOMAINS",
    "REMOVED_MESSAGE",
    "SAML_SOURCES",
    "SCOPES_MAX",
    "SCOPE_RE",
    "SESSION_SSO_KEY",
    "SUBJECT_MAX",
    "URL_MAX",
    "DomainCheck",
    "OIDCSettings",
    "SAMLSettings",
    "SSOInputError",
    "TestCheck",
    "TestReport",
    "attribute_presets",
    "claim_expires_at",
    "clean_attribute_mapping",
    "client_secret",
    "complete_sign_in",
    "connection_create",
    "connection_delete",
    "connection_draft_open",
    "connection_drafts_purge",
    "connection_for_email",
    "connection_make_primary",
    "connection_request_metadata_refresh",
    "connection_set_status",
    "connection_staff_disable",
    "connection_test_complete",
    "connection_test_fail",
    "connection_update",
    "domain_check",
    "domain_claim",
    "domain_claims_sweep",
    "domain_release",
    "domain_route",
    "domain_verify",
    "email_domain",
    "identity_link_values",
    "normalize_domain",
    "oidc_config_build",
    "parse_iso",
    "pending_link_for",
    "preset_labels",
    "primary_ensure",
    "record_sign_in_failure",
    "saml_config_build",
]
