"""Sign-in flows kept in the session: begin, take (once, within ten minutes), finish a real or test sign-in.

A flow records which connection, whether it is a real sign-in or an admin's
test, where to go afterwards (a same-site path only) and the protocol state
(the SAML AuthnRequest id, the OIDC state blob). The SAML RelayState is only the
flow's random key, never a URL.
"""

from __future__ import annotations

import secrets
import time
from typing import Any, cast

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from apps.access.decisions import can
from apps.accounts.models import User
from apps.sso import oidc, saml, selectors, services
from apps.sso.models import SSOConnection
from apps.sso.types import Assertion, SSOConfigError, SSOError
from apps.sso.views._common import (
    FLOW_MAX_AGE,
    FLOWS_KEY,
    FLOWS_MAX,
    SSO_MANAGE,
    TEST_REPORT_KEY,
    Kind,
    _base_url,
    _error,
    _settings_url,
    _sign_in_error,
    safe_next,
)
from apps.tenants.selectors import membership_for_console

# --- flows ------------------------------------------------------------------------------------


def _flows(request: HttpRequest) -> dict[str, dict[str, Any]]:
    """The session's flows that have not expired."""
    raw = request.session.get(FLOWS_KEY)
    if not isinstance(raw, dict):
        return {}
    now = time.time()
    return {
        key: flow
        for key, flow in raw.items()
        if isinstance(flow, dict) and isinstance(flow.get("at"), int | float) and now - flow["at"] <= FLOW_MAX_AGE
    }


def _flow_save(request: HttpRequest, key: str, connection: SSOConnection, **data: Any) -> None:
    flows = _flows(request)
    while len(flows) >= FLOWS_MAX:  # a browser with many abandoned attempts keeps the newest only
        flows.pop(min(flows, key=lambda k: flows[k]["at"]))
    flows[key] = {"connection": str(connection.public_id), "at": time.time(), **data}
    request.session[FLOWS_KEY] = flows


def _flow_take(request: HttpRequest, connection: SSOConnection, *, key: str = "", state: str = "") -> dict | None:
    """Remove and return the flow for ``connection``: by key (SAML RelayState) or OIDC state, else the newest."""
    flows = _flows(request)
    mine = {k: f for k, f in flows.items() if f.get("connection") == str(connection.public_id)}
    chosen = ""
    if key and key in mine:
        chosen = key
    elif state:
        chosen = next((k for k, f in mine.items() if (f.get("state_blob") or {}).get("state") == state), "")
    if not chosen and mine:
        chosen = max(mine, key=lambda k: mine[k]["at"])
    if not chosen:
        request.session[FLOWS_KEY] = flows
        return None
    flow = flows.pop(chosen)
    request.session[FLOWS_KEY] = flows
    return flow


def _begin(
    request: HttpRequest, connection: SSOConnection, *, mode: str, next_url: str = "", login_hint: str = ""
) -> HttpResponse:
    """Send the browser to the IdP, keeping the flow in the session."""
    base = _base_url(request)
    key = secrets.token_urlsafe(24)  # 32 characters: RelayState allows 80 bytes
    flow: dict[str, Any] = {"mode": mode, "next": next_url}
    if mode == "test":
        flow["by"] = request.user.pk
    try:
        if connection.kind == Kind.SAML:
            url, request_id = saml.login_url(connection, base_url=base, relay_state=key)
            flow["request_id"] = request_id
        else:
            config = connection.config or {}
            redirect_uri = selectors.sp_details(connection, base_url=base).oidc_redirect_uri
            url, blob = oidc.begin(
                connection,
                redirect_uri=redirect_uri,
                client_id=str(config.get("client_id", "")),
                scopes=list(config.get("scopes") or []),
                discovery=config.get("discovery") or {},
                login_hint=login_hint,
            )
            flow.update({"state_blob": blob, "redirect_uri": redirect_uri})
    except SSOConfigError as exc:
        detail = str(exc) if mode == "test" else "Ask your administrator to check the SSO connection."
        return _error(request, title="This identity provider is not set up correctly", message=detail, status=502)
    _flow_save(request, key, connection, **flow)
    return redirect(url)


def _landing(connection: SSOConnection, next_url: str) -> str:
    if next_url:
        return next_url
    if connection.tenant is not None:
        return reverse("tenants:dashboard", kwargs={"tenant_slug": connection.tenant.slug})
    return reverse("home")


def _finish(request: HttpRequest, connection: SSOConnection, flow: dict | None, assertion: Assertion) -> HttpResponse:
    try:
        services.complete_sign_in(connection=connection, assertion=assertion, request=request)
    except SSOError as exc:
        return _sign_in_error(request, exc, connection)
    next_url = safe_next(str((flow or {}).get("next") or "")) or ""
    return redirect(_landing(connection, next_url))


def _may_test(request: HttpRequest, connection: SSOConnection, flow: dict) -> bool:
    """The test's result goes only to the admin who started it, if they still manage SSO there (staff: platform)."""
    user = request.user
    if not user.is_authenticated or user.pk != flow.get("by"):
        return False
    if connection.tenant is None:  # the platform's connection: tested by platform staff
        return bool(user.is_active and user.is_staff)
    membership = membership_for_console(user=user, slug=connection.tenant.slug)
    return can(membership, SSO_MANAGE, tenant=connection.tenant)


def _finish_test(
    request: HttpRequest,
    connection: SSOConnection,
    flow: dict,
    *,
    assertion: Assertion | None = None,
    error: SSOError | SSOConfigError | None = None,
) -> HttpResponse:
    """Store a test's report for the settings page; nobody is signed in."""
    if not _may_test(request, connection, flow):
        return _error(
            request,
            title="Test result not shown",
            message="Only the administrator who started the test can see its result. Sign in and run it again.",
            status=403,
        )
    tester = cast(User, request.user)  # ``_may_test``: signed in, and the admin who started the test
    if assertion is not None:
        report = services.connection_test_complete(connection=connection, assertion=assertion, actor=tester)
    else:
        failure = error if error is not None else SSOConfigError("The test ended without a result.")
        report = services.connection_test_fail(connection=connection, error=failure, actor=tester)
    request.session[TEST_REPORT_KEY] = {str(connection.pk): report.as_dict()}
    return redirect(_settings_url(connection.tenant, "test_result", connection_id=connection.pk))
