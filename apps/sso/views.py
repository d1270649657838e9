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

import functools
import secrets
import time
import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.core import signing
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.access.decorators import platform_view, public_view, tenant_view
from apps.access.services import authorize
from apps.sso import oidc, saml, selectors, services
from apps.sso.forms import (
    ConfirmForm,
    DiscoverForm,
    DomainClaimForm,
    OIDCConnectionForm,
    PolicyForm,
    SAMLConnectionForm,
    add_service_error,
)
from apps.sso.models import SSOConnection
from apps.sso.policy import PolicyError, policy_update
from apps.sso.services import SSOInputError, TestReport
from apps.sso.types import Assertion, SSOConfigError, SSOError
from apps.tenants.models import Membership, Tenant
from apps.tenants.selectors import membership_for_console

SSO_MANAGE = "sso.manage"
FLOWS_KEY = "sso_flows"
TEST_REPORT_KEY = "sso_test_report"
FLOW_MAX_AGE = 10 * 60
FLOWS_MAX = 5
NEXT_MAX = 2000
RESUBMIT_FIELD = "bastion_resubmit"
DRAFT_ID_SALT = "bastion.sso.new-connection"
DRAFT_ID_MAX_AGE = 24 * 3600
Kind = SSOConnection.Kind
Status = SSOConnection.Status


class TenantRequest(HttpRequest):
    """What ``tenant_view`` adds to the request (for type hints only)."""

    tenant: Tenant | None  # None on the platform's SSO pages (staff)
    membership: Membership | None


# --- helpers ------------------------------------------------------------------------------------


def _base_url(request: HttpRequest) -> str:
    """Scheme and host the SP URLs are built on: ``settings.SSO_BASE_URL`` when set, else this request's."""
    configured = str(getattr(settings, "SSO_BASE_URL", "") or "")
    if configured:
        return configured.rstrip("/")
    return f"{request.scheme}://{request.get_host()}"


def safe_next(value: str) -> str | None:
    """``value`` if it is a same-site relative path ('' stays ''), else None (off-site or malformed)."""
    if not value:
        return ""
    if len(value) > NEXT_MAX or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return None
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return None
    return value


def _error(request: HttpRequest, *, title: str, message: str, status: int = 400, **extra: Any) -> HttpResponse:
    return render(request, "sso/error.html", {"title": title, "message": message, **extra}, status=status)


def _sign_in_error(request: HttpRequest, exc: SSOError, connection: SSOConnection | None = None) -> HttpResponse:
    """The page a refused sign-in ends on: the reason in plain words and the way back."""
    status = 403 if exc.code in services.DENIAL_CODES else 400
    return _error(
        request,
        title="Sign-in did not work",
        message=exc.message,
        status=status,
        code=exc.code,
        connection=connection,
    )


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
    return authorize(membership, SSO_MANAGE, tenant=connection.tenant, log_denial=False).allowed


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
    if assertion is not None:
        report = services.test_sign_in(connection=connection, assertion=assertion, by=request.user)
    else:
        report = services.test_sign_in_failed(connection=connection, error=error, by=request.user)  # type: ignore[arg-type]
    request.session[TEST_REPORT_KEY] = {str(connection.pk): report.as_dict()}
    return redirect(_settings_url(connection.tenant, "test_result", connection_id=connection.pk))


# --- public: the sign-in flow -------------------------------------------------------------------


def _public_connection(public_id: uuid.UUID, kind: str | None = None) -> SSOConnection:
    connection = selectors.connection_by_public_id(public_id=public_id)
    if connection is None or (kind is not None and connection.kind != kind):
        raise Http404("No such connection")
    return connection


@public_view
@never_cache
@require_safe
def start(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """Begin a sign-in through an enabled connection. ``?next=`` must be a same-site path (else 400)."""
    connection = selectors.connection_by_public_id(public_id=public_id)
    if connection is None or connection.status != Status.ENABLED:
        return _error(
            request,
            title="This sign-in link is not active",
            message="Ask your administrator for the right link, or sign in with your e-mail address.",
            status=404,
        )
    next_url = safe_next(request.GET.get("next", ""))
    if next_url is None:
        return _error(
            request,
            title="Sign-in refused",
            message="The page to return to after signing in is not on this site, so this link was not followed.",
        )
    hint = request.GET.get("login_hint", "")
    hint = hint if services.email_domain(hint) else ""
    return _begin(request, connection, mode="sign_in", next_url=next_url, login_hint=hint)


@public_view
@csrf_exempt  # the IdP posts here cross-site; the response is signed and bound to our AuthnRequest instead
@never_cache
@require_POST
def saml_acs(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """SAML Assertion Consumer Service: verify the posted Response, then sign in (or report a test)."""
    connection = _public_connection(public_id, Kind.SAML)
    relay_state = request.POST.get("RelayState", "")[:200]
    flow = _flow_take(request, connection, key=relay_state)
    if flow is None and request.POST.get(RESUBMIT_FIELD) != "1":
        # First arrival without the session cookie (SameSite=Lax): post again from our own origin.
        fields = {k: request.POST.get(k, "") for k in ("SAMLResponse", "RelayState") if k in request.POST}
        return render(request, "sso/saml_resubmit.html", {"fields": fields, "marker": RESUBMIT_FIELD})
    mode = (flow or {}).get("mode", "sign_in")
    if mode == "sign_in" and connection.status != Status.ENABLED:
        exc = SSOError("connection_disabled", "Sign-in through this identity provider is not enabled.")
        services.record_sign_in_failure(connection=connection, error=exc)
        return _sign_in_error(request, exc, connection)
    base = _base_url(request)
    if getattr(settings, "SSO_BASE_URL", ""):
        parts = urlsplit(base)
        host, https = parts.netloc, parts.scheme == "https"
    else:
        host, https = request.get_host(), request.is_secure()
    try:
        assertion = saml.process_response(
            connection,
            base_url=base,
            post_data=request.POST,
            request_host=host,
            request_path=request.path,
            https=https,
            expected_request_id=(flow or {}).get("request_id"),
        )
    except SSOError as exc:
        if mode == "test" and flow is not None:
            return _finish_test(request, connection, flow, error=exc)
        services.record_sign_in_failure(connection=connection, error=exc)
        return _sign_in_error(request, exc, connection)
    if mode == "test" and flow is not None:
        return _finish_test(request, connection, flow, assertion=assertion)
    return _finish(request, connection, flow, assertion)


@public_view
@never_cache
@require_safe
def oidc_callback(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """OpenID Connect redirect URI: redeem the code, verify the ID token, then sign in (or report a test)."""
    connection = _public_connection(public_id, Kind.OIDC)
    flow = _flow_take(request, connection, state=request.GET.get("state", "")[:200])
    if flow is None or not isinstance(flow.get("state_blob"), dict):
        exc = SSOError("state", "No sign-in was in progress in this browser, or it took too long. Please start again.")
        services.record_sign_in_failure(connection=connection, error=exc)
        return _sign_in_error(request, exc, connection)
    mode = flow.get("mode", "sign_in")
    if mode == "sign_in" and connection.status != Status.ENABLED:
        exc = SSOError("connection_disabled", "Sign-in through this identity provider is not enabled.")
        services.record_sign_in_failure(connection=connection, error=exc)
        return _sign_in_error(request, exc, connection)
    config = connection.config or {}
    try:
        assertion = oidc.complete(
            connection,
            redirect_uri=str(flow.get("redirect_uri", "")),
            params=request.GET,
            state_blob=flow["state_blob"],
            client_id=str(config.get("client_id", "")),
            client_secret=services.client_secret(connection),
            discovery=config.get("discovery") or {},
        )
    except (SSOError, SSOConfigError) as raised:
        exc = raised if isinstance(raised, SSOError) else SSOError("configuration", str(raised))
        if mode == "test":
            return _finish_test(request, connection, flow, error=exc)
        services.record_sign_in_failure(connection=connection, error=exc)
        return _sign_in_error(request, exc, connection)
    if mode == "test":
        return _finish_test(request, connection, flow, assertion=assertion)
    return _finish(request, connection, flow, assertion)


@public_view
@require_safe
def saml_metadata(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """The SP metadata XML of a SAML connection (``?download=1`` as a file) for the IdP administrator."""
    connection = _public_connection(public_id, Kind.SAML)
    try:
        xml = saml.sp_metadata_xml(connection, base_url=_base_url(request))
    except SSOConfigError as exc:
        return HttpResponse(f"Metadata unavailable: {exc}", status=409, content_type="text/plain; charset=utf-8")
    response = HttpResponse(xml, content_type="application/samlmetadata+xml; charset=utf-8")
    if request.GET.get("download"):
        response["Content-Disposition"] = f'attachment; filename="bastion-sp-{connection.public_id}.xml"'
    return response


@public_view
@csrf_exempt  # IdP-initiated logout arrives cross-site; it only ends a session that came through this connection
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def saml_sls(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """Single logout: end the local session if it was signed in through this connection, then go to sign-in."""
    marker = request.session.get(services.SESSION_SSO_KEY) or {}
    if request.user.is_authenticated and isinstance(marker, dict) and marker.get("connection") == str(public_id):
        logout(request)
    return redirect("account_login")


@public_view
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def discover(request: HttpRequest) -> HttpResponse:
    """E-mail first: a verified domain with an enabled connection goes to its IdP, anything else to passwords."""
    initial_next = safe_next(request.GET.get("next", "")) or ""
    form = DiscoverForm(request.POST or None, initial={"next": initial_next})
    if request.method == "POST" and form.is_valid():
        email = form.cleaned_data["email"]
        next_url = safe_next(form.cleaned_data.get("next") or "") or ""
        connection = services.connection_for_email(email)
        if connection is not None:
            query = {"login_hint": email, **({"next": next_url} if next_url else {})}
            return redirect(reverse("sso:start", kwargs={"public_id": connection.public_id}) + "?" + urlencode(query))
        query = {"login": email, **({"next": next_url} if next_url else {})}
        return redirect(reverse("account_login") + "?" + urlencode(query))
    return render(request, "sso/discover.html", {"form": form}, status=400 if form.errors else 200)


# --- settings: connections ----------------------------------------------------------------------


def _settings_url(tenant: Tenant | None, name: str, **kwargs: Any) -> str:
    """A settings page of ``tenant``'s SSO, or of the platform's (under /platform/sso/) for ``None``."""
    if tenant is None:
        return reverse(f"platform:sso:{name}", kwargs=kwargs)
    return reverse(f"sso_settings:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


def sso_settings_view(view: Any) -> Any:
    """``tenant_view("sso.manage")`` for the tenant's pages; ``.platform`` is the same view for platform staff.

    The platform variant (``platform_view``: staff only, 404 for everyone else)
    runs the same body with ``request.tenant`` None, which every selector and
    service reads as "the platform's" (connections and policy with tenant null).
    """
    tenant_version = tenant_view(SSO_MANAGE)(view)

    @functools.wraps(view)
    def platform_scoped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.tenant = None  # type: ignore[attr-defined]
        request.membership = None  # type: ignore[attr-defined]
        return view(request, *args, **kwargs)

    tenant_version.platform = platform_view(platform_scoped)
    return tenant_version


def _connection_or_404(request: TenantRequest, connection_id: int) -> SSOConnection:
    connection = selectors.connection_get(tenant=request.tenant, connection_id=connection_id)
    if connection is None:
        raise Http404("No such connection")
    return connection


def _form_class(kind: str) -> type[SAMLConnectionForm] | type[OIDCConnectionForm]:
    return SAMLConnectionForm if kind == Kind.SAML else OIDCConnectionForm


@sso_settings_view
@require_safe
def settings_list(request: TenantRequest) -> HttpResponse:
    """Connections with their status, domains and policy at a glance (sso.manage)."""
    context = {
        "connections": list(selectors.connection_list(tenant=request.tenant)),
        "domains": list(selectors.domain_list(tenant=request.tenant)),
        "policy": selectors.policy_get(tenant=request.tenant),
        "discover_url": request.build_absolute_uri(reverse("sso:discover")),
    }
    return render(request, "sso/settings_list.html", context)


def _draft_public_id(request: TenantRequest) -> uuid.UUID:
    """The public id the add page shows URLs for, carried signed through the POST (new on a GET or bad token)."""
    token = request.POST.get("draft_id", "") if request.method == "POST" else ""
    if token:
        try:
            return uuid.UUID(signing.loads(token, salt=DRAFT_ID_SALT, max_age=DRAFT_ID_MAX_AGE))
        except (signing.BadSignature, ValueError, TypeError):
            pass
    return uuid.uuid4()


@sso_settings_view
@require_http_methods(["GET", "HEAD", "POST"])
def connection_create(request: TenantRequest, kind: str) -> HttpResponse:
    """Add a SAML or OIDC connection (sso.manage). Bastion's SP details come first, then the IdP's.

    Bad input (metadata, URL, certificate, discovery) is a form error (400)
    and nothing is saved.
    """
    public_id = _draft_public_id(request)
    draft = SSOConnection(public_id=public_id, kind=kind, tenant=request.tenant)
    form_class = _form_class(kind)
    form = form_class(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            connection = services.connection_create(
                tenant=request.tenant,
                kind=kind,
                name=form.cleaned_data["name"],
                saml=form.saml_settings() if kind == Kind.SAML else None,  # type: ignore[union-attr]
                oidc_settings=form.oidc_settings() if kind == Kind.OIDC else None,  # type: ignore[union-attr]
                attribute_mapping=form.mapping(),
                preset=form.cleaned_data.get("preset", ""),
                public_id=public_id,
                by=request.user,  # type: ignore[arg-type]
            )
        except SSOInputError as exc:
            add_service_error(form, exc, aliases=form.error_aliases())
        else:
            messages.success(request, f"Connection “{connection.name}” saved. Run a test sign-in, then enable it.")
            return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))
    context = {
        "form": form,
        "kind": kind,
        "connection": None,
        "sp": selectors.sp_details(draft, base_url=_base_url(request)),
        "draft_id": signing.dumps(str(public_id), salt=DRAFT_ID_SALT),
        "presets": form.presets,
    }
    return render(request, f"sso/connection_form_{kind}.html", context, status=400 if form.errors else 200)


def _detail_context(request: TenantRequest, connection: SSOConnection) -> dict[str, Any]:
    config = connection.config or {}
    certs = [selectors.certificate_info(pem) for pem in config.get("idp_x509_certs") or []]
    return {
        "connection": connection,
        "config": config,
        "sp": selectors.sp_details(connection, base_url=_base_url(request)),
        "certs": certs,
        "mapping": connection.attribute_mapping or {},
        "tested_at": services.parse_iso(config.get("tested_at")),
        "fetched_at": services.parse_iso(config.get("metadata_fetched_at")),
        "valid_until": services.parse_iso(config.get("metadata_valid_until")),
        "has_secret": bool(connection.secret_encrypted),
        # The SAML module's defaults for absent keys.
        "want_assertion_signed": config.get("want_assertion_signed", True) is not False,
        "allow_idp_initiated": bool(config.get("allow_idp_initiated", False)),
        "start_url": request.build_absolute_uri(reverse("sso:start", kwargs={"public_id": connection.public_id})),
    }


@sso_settings_view
@require_safe
def connection_detail(request: TenantRequest, connection_id: int) -> HttpResponse:
    """One connection: Bastion's SP details first, then the IdP settings, mapping, status and actions."""
    connection = _connection_or_404(request, connection_id)
    return render(request, "sso/connection_detail.html", _detail_context(request, connection))


@sso_settings_view
@require_http_methods(["GET", "HEAD", "POST"])
def connection_edit(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Change a connection (sso.manage). A refused change is a form error and the stored settings stay."""
    connection = _connection_or_404(request, connection_id)
    form_class = _form_class(connection.kind)
    form = form_class(
        request.POST or None, request.FILES or None, initial=form_class.initial_for(connection), editing=True
    )
    if request.method == "POST" and form.is_valid():
        try:
            connection = services.connection_update(
                connection=connection,
                name=form.cleaned_data["name"],
                saml=form.saml_settings() if connection.kind == Kind.SAML else None,  # type: ignore[union-attr]
                oidc_settings=form.oidc_settings() if connection.kind == Kind.OIDC else None,  # type: ignore[union-attr]
                attribute_mapping=form.mapping(),
                preset=form.cleaned_data.get("preset", ""),
                by=request.user,  # type: ignore[arg-type]
            )
        except SSOInputError as exc:
            add_service_error(form, exc, aliases=form.error_aliases())
        else:
            messages.success(request, f"Connection “{connection.name}” saved.")
            return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))
    context = {
        "form": form,
        "kind": connection.kind,
        "connection": connection,
        "sp": selectors.sp_details(connection, base_url=_base_url(request)),
        "presets": form.presets,
    }
    return render(request, f"sso/connection_form_{connection.kind}.html", context, status=400 if form.errors else 200)


@sso_settings_view
@require_POST
def connection_test(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Start a test sign-in at the IdP; the result comes back to ``test_result``. Nobody is signed in."""
    connection = _connection_or_404(request, connection_id)
    return _begin(request, connection, mode="test")


@sso_settings_view
@require_safe
def test_result(request: TenantRequest, connection_id: int) -> HttpResponse:
    """What the last test of this connection received, and whether sign-in would work."""
    connection = _connection_or_404(request, connection_id)
    stored = (request.session.get(TEST_REPORT_KEY) or {}).get(str(connection.pk))
    if not isinstance(stored, dict):
        messages.info(request, "No test result to show. Run a test sign-in.")
        return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))
    report = TestReport.from_dict(stored)
    return render(request, "sso/test_result.html", {"connection": connection, "report": report})


def _status_change(request: TenantRequest, connection_id: int, *, enabled: bool) -> HttpResponse:
    connection = _connection_or_404(request, connection_id)
    try:
        services.connection_set_status(connection=connection, enabled=enabled, by=request.user)  # type: ignore[arg-type]
    except SSOInputError as exc:
        messages.error(request, exc.message)
    else:
        verb = "enabled: people can now sign in with it" if enabled else "disabled"
        messages.success(request, f"Connection “{connection.name}” {verb}.")
    return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))


@sso_settings_view
@require_POST
def connection_enable(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Enable a connection that passed a test (sso.manage)."""
    return _status_change(request, connection_id, enabled=True)


@sso_settings_view
@require_POST
def connection_disable(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Disable an enabled connection (sso.manage)."""
    return _status_change(request, connection_id, enabled=False)


@sso_settings_view
@require_POST
def connection_refresh(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Ask for the IdP metadata to be downloaded again now (URL-configured SAML connections)."""
    connection = _connection_or_404(request, connection_id)
    try:
        services.connection_request_metadata_refresh(connection=connection, by=request.user)  # type: ignore[arg-type]
    except SSOInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, "Metadata refresh requested; the page shows the result once it has run.")
    return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))


@sso_settings_view
@require_http_methods(["GET", "HEAD", "POST"])
def connection_delete(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Confirm, then delete a connection that is not enabled (sso.manage)."""
    connection = _connection_or_404(request, connection_id)
    if request.method == "POST" and ConfirmForm(request.POST).is_valid():
        try:
            services.connection_delete(connection=connection, by=request.user)  # type: ignore[arg-type]
        except SSOInputError as exc:
            messages.error(request, exc.message)
            return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))
        messages.success(request, f"Connection “{connection.name}” deleted.")
        return redirect(_settings_url(request.tenant, "list"))
    return render(request, "sso/connection_delete.html", {"connection": connection})


# --- settings: domains, policy, groups ----------------------------------------------------------


@sso_settings_view
@require_http_methods(["GET", "HEAD", "POST"])
def domains(request: TenantRequest) -> HttpResponse:
    """Claimed e-mail domains with their DNS TXT tokens; claim another (sso.manage)."""
    form = DomainClaimForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            claim = services.domain_claim(tenant=request.tenant, domain=form.cleaned_data["domain"], by=request.user)  # type: ignore[arg-type]
        except SSOInputError as exc:
            add_service_error(form, exc)
        else:
            messages.success(
                request, f"{claim.domain} claimed. Add the TXT record below; Bastion staff then verify it."
            )
            return redirect(_settings_url(request.tenant, "domains"))
    context = {"form": form, "domains": list(selectors.domain_list(tenant=request.tenant))}
    return render(request, "sso/domains.html", context, status=400 if form.errors else 200)


@sso_settings_view
@require_POST
def domain_release(request: TenantRequest, domain_id: int) -> HttpResponse:
    """Give up a domain claim (sso.manage)."""
    claim = selectors.domain_get(tenant=request.tenant, domain_id=domain_id)
    if claim is None:
        raise Http404("No such domain")
    try:
        services.domain_release(domain=claim, by=request.user, tenant=request.tenant)  # type: ignore[arg-type]
    except SSOInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{claim.domain} removed.")
    return redirect(_settings_url(request.tenant, "domains"))


@sso_settings_view
@require_http_methods(["GET", "HEAD", "POST"])
def policy(request: TenantRequest) -> HttpResponse:
    """The tenant's sign-in policy (sso.manage); audited through ``apps.sso.policy.policy_update``."""
    current = selectors.policy_get(tenant=request.tenant)
    form = PolicyForm(request.POST or None, initial=PolicyForm.initial_for(current))
    if request.method == "POST" and form.is_valid():
        try:
            policy_update(tenant=request.tenant, by=request.user, **form.cleaned_data)
        except PolicyError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Sign-in policy saved.")
            return redirect(_settings_url(request.tenant, "policy"))
    context = {
        "form": form,
        "has_working_sso": selectors.enabled_connections(tenant=request.tenant).exists(),
    }
    return render(request, "sso/policy.html", context, status=400 if form.errors else 200)


@tenant_view(SSO_MANAGE)
@require_safe
def groups(request: TenantRequest) -> HttpResponse:
    """IdP group → role mapping: current bindings, groups seen at sign-in, links to the role pages."""
    bindings = selectors.group_bindings(tenant=request.tenant)
    bound = {binding.idp_group for binding in bindings}
    seen = selectors.groups_seen(tenant=request.tenant)
    context = {
        "bindings": bindings,
        "unbound": [(group, count) for group, count in seen if group not in bound],
        "seen_counts": dict(seen),
        "roles": list(selectors.roles_for_mapping(tenant=request.tenant)),
        "can_manage_roles": authorize(
            request.membership, "role.manage", tenant=request.tenant, log_denial=False
        ).allowed,
    }
    return render(request, "sso/groups.html", context)


# --- platform staff: domain verification --------------------------------------------------------


@platform_view
@require_safe
def staff_domains(request: HttpRequest) -> HttpResponse:
    """Domain claims waiting for verification (``?all=1``: every claim), for platform staff."""
    show_all = request.GET.get("all") == "1"
    claims = list(selectors.domain_claims_for_staff(pending_only=not show_all)[:500])
    return render(request, "sso/staff_domains.html", {"claims": claims, "show_all": show_all})


def _staff_claim(domain_id: int) -> Any:
    claim = selectors.domain_get_any(domain_id=domain_id)
    if claim is None:
        raise Http404("No such domain")
    return claim


@platform_view
@require_POST
def staff_domain_verify(request: HttpRequest, domain_id: int) -> HttpResponse:
    """Mark a claim verified after checking its DNS TXT record (platform staff)."""
    claim = _staff_claim(domain_id)
    try:
        services.domain_verify(domain=claim, by=request.user)  # type: ignore[arg-type]
    except SSOInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{claim.domain} verified for {claim.tenant.name if claim.tenant else 'the platform'}."
        )
    return redirect("sso:staff_domains")


@platform_view
@require_POST
def staff_domain_release(request: HttpRequest, domain_id: int) -> HttpResponse:
    """Remove a claim (e.g. a squatted domain) so its rightful owner can claim it (platform staff)."""
    claim = _staff_claim(domain_id)
    try:
        services.domain_release(domain=claim, by=request.user)  # type: ignore[arg-type]
    except SSOInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Claim on {claim.domain} removed.")
    return redirect("sso:staff_domains")
