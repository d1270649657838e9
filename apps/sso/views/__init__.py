"""SSO pages: the public sign-in flow, the tenant's SSO settings, and staff domain verification.

Public (``public_view``): ``start`` begins a SAML or OIDC sign-in, the SAML ACS
and the OIDC callback finish it, ``saml_metadata`` serves the SP metadata,
``discover`` routes an e-mail address to its organisation's IdP. Settings
(``tenant_view("sso.manage")``) live under /t/<slug>/settings/sso/; domain
verification is for platform staff (``platform_view``).

A sign-in in progress is a *flow* kept in the session: which connection,
whether it is a real sign-in or an admin's test, where to go afterwards (a
same-site path only), and the protocol state (the SAML AuthnRequest id, the
OIDC state blob). A flow is used once and expires after ten minutes. The
SAML RelayState is only the flow's random key, never a URL.

The session cookie is SameSite=Lax, so the IdP's cross-site POST to the ACS
arrives without it. The ACS then answers with a page that posts the same
form again from our own origin (the cookie comes along); the flow is found
on that second POST.
"""

from __future__ import annotations

from apps.sso.views._common import (
    DRAFT_ID_MAX_AGE,
    DRAFT_ID_SALT,
    FLOW_MAX_AGE,
    FLOWS_KEY,
    FLOWS_MAX,
    NEXT_MAX,
    RESUBMIT_FIELD,
    SSO_MANAGE,
    TEST_REPORT_KEY,
    Kind,
    Status,
    TenantRequest,
    safe_next,
)
from apps.sso.views.public import (
    discover,
    oidc_callback,
    saml_acs,
    saml_metadata,
    saml_sls,
    staff_domain_release,
    staff_domain_verify,
    staff_domains,
    start,
    step_up,
)
from apps.sso.views.settings import (
    connection_create,
    connection_delete,
    connection_detail,
    connection_disable,
    connection_edit,
    connection_enable,
    connection_primary,
    connection_refresh,
    connection_route,
    connection_test,
    domain_check,
    domain_release,
    domains,
    groups,
    policy,
    settings_list,
    sso_settings_view,
    test_result,
)
from apps.sso.views.staff import staff_connection_disable, staff_tenant_connections

__all__ = [
    "DRAFT_ID_MAX_AGE",
    "DRAFT_ID_SALT",
    "FLOWS_KEY",
    "FLOWS_MAX",
    "FLOW_MAX_AGE",
    "NEXT_MAX",
    "RESUBMIT_FIELD",
    "SSO_MANAGE",
    "TEST_REPORT_KEY",
    "Kind",
    "Status",
    "TenantRequest",
    "connection_create",
    "connection_delete",
    "connection_detail",
    "connection_disable",
    "connection_edit",
    "connection_enable",
    "connection_primary",
    "connection_refresh",
    "connection_route",
    "connection_test",
    "discover",
    "domain_check",
    "domain_release",
    "domains",
    "groups",
    "oidc_callback",
    "policy",
    "safe_next",
    "saml_acs",
    "saml_metadata",
    "saml_sls",
    "settings_list",
    "sso_settings_view",
    "staff_connection_disable",
    "staff_domain_release",
    "staff_domain_verify",
    "staff_domains",
    "staff_tenant_connections",
    "start",
    "step_up",
    "test_result",
]
