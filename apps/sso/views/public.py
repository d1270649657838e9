"""Public SSO pages: start, SAML ACS/metadata/SLS, OIDC callback, discovery, and staff domain verification.

The sign-in endpoints are ``public_view``; the IdP's cross-site POST to the
ACS arrives without the SameSite=Lax cookie, so the ACS answers with a page
that posts the same form again from our own origin. Domain verification pages
are for platform staff (``platform_view``).
"""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlencode, urlsplit

from csp.decorators import csp_update
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.access.decorators import platform_view, public_view
from apps.accounts.services import session_sign_in
from apps.accounts.types import AuthenticatedRequest
from apps.sso import boundary, oidc, policy, saml, selectors, services
from apps.sso.forms import (
    DiscoverForm,
)
from apps.sso.models import SSOConnection
from apps.sso.services import SSOInputError
from apps.sso.types import SSOConfigError, SSOError
from apps.sso.views._common import RESUBMIT_FIELD, Kind, Status, _base_url, _error, _sign_in_error, safe_next
from apps.sso.views.flows import _begin, _finish, _finish_test, _flow_take
from apps.tenants.selectors import membership_for_console

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
@never_cache
@require_http_methods(["GET", "POST"])
def saml_sls(request: HttpRequest, public_id: uuid.UUID) -> HttpResponse:
    """Single logout: end the local session if it was signed in through this connection.

    A GET must carry a LogoutRequest or LogoutResponse signed by the IdP
    (validated by python3-saml against the connection's certificates); a bare
    cross-site link signs nobody out. A POST is our own sign-out form and goes
    through Django's CSRF check (this view is not CSRF-exempt).
    """
    connection = _public_connection(public_id, Kind.SAML)
    reply_url = ""
    if request.method == "GET":
        base = _base_url(request)
        if getattr(settings, "SSO_BASE_URL", ""):
            parts = urlsplit(base)
            host, https = parts.netloc, parts.scheme == "https"
        else:
            host, https = request.get_host(), request.is_secure()
        try:
            _name_id, reply_url = saml.process_logout(
                connection,
                base_url=base,
                get_data=request.GET,
                request_host=host,
                request_path=request.path,
                https=https,
            )
        except SSOError as exc:
            return _error(request, title="Sign-out refused", message=exc.message, status=400)
    marker = request.session.get(services.SESSION_SSO_KEY) or {}
    if request.user.is_authenticated and isinstance(marker, dict) and marker.get("connection") == str(public_id):
        logout(request)
    return redirect(reply_url) if reply_url else redirect("account_login")


@public_view  # signed-in people only (checked below): the page a tenant's console sends a foreign session to
@never_cache
@require_http_methods(["GET", "POST"])
def step_up(request: HttpRequest) -> HttpResponse:
    """Ask a signed-in person to enter ``?tenant=`` by that tenant's own way in (its IdP, or a password).

    A session is bound to one sign-in (apps.sso.boundary): a POST with
    ``method=password`` ends this session and opens the password sign-in,
    the IdP button starts that tenant's SSO; either new sign-in replaces the
    old one. Non-members get 404, like the console itself.
    """
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    slug = str(request.GET.get("tenant") or request.POST.get("tenant") or "")
    membership = membership_for_console(user=request.user, slug=slug)
    if membership is None:
        raise Http404("No such tenant")
    tenant = membership.tenant
    landing = reverse("tenants:dashboard", kwargs={"tenant_slug": tenant.slug})
    next_url = safe_next(str(request.GET.get("next") or request.POST.get("next") or "")) or landing
    step = boundary.step_up_for(
        membership=membership,
        sign_in=session_sign_in(request),
        sso=request.session.get(services.SESSION_SSO_KEY),
    )
    if step is None:
        return redirect(next_url)  # this session may enter already
    if request.method == "POST" and request.POST.get("method") == "password" and step.password_allowed:
        email = request.user.email
        logout(request)  # one sign-in per session: the password sign-in starts a new one
        return redirect(reverse("account_login") + "?" + urlencode({"next": next_url, "login": email}))
    idp_url = ""
    if step.connection is not None:
        idp_url = policy.sso_start_url(step.connection) + "?" + urlencode({"next": next_url})
    return render(
        request,
        "sso/step_up.html",
        {"step": step, "tenant": tenant, "next": next_url, "idp_url": idp_url},
        status=403 if request.method == "POST" else 200,
    )


@public_view
@never_cache
# The e-mail decides the IdP, so this page's form may end at any https origin (the policy's
# form-action 'self' also holds a form's redirects in Chromium); plain http only in development.
@csp_update({"form-action": ["https:", *(["http:"] if settings.DEBUG else [])]})
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


# --- platform staff: domain verification --------------------------------------------------------


@platform_view
@require_safe
def staff_domains(request: AuthenticatedRequest) -> HttpResponse:
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
def staff_domain_verify(request: AuthenticatedRequest, domain_id: int) -> HttpResponse:
    """Verify a claim without its DNS record: the audited override, with the reason given (platform staff)."""
    claim = _staff_claim(domain_id)
    try:
        services.domain_verify(domain=claim, actor=request.user, reason=request.POST.get("reason", ""))
    except SSOInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(
            request, f"{claim.domain} verified for {claim.tenant.name if claim.tenant else 'the platform'}."
        )
    return redirect("sso:staff_domains")


@platform_view
@require_POST
def staff_domain_release(request: AuthenticatedRequest, domain_id: int) -> HttpResponse:
    """Remove a claim (e.g. a squatted domain) so its rightful owner can claim it (platform staff)."""
    claim = _staff_claim(domain_id)
    try:
        services.domain_release(domain=claim, actor=request.user)
    except SSOInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Claim on {claim.domain} removed.")
    return redirect("sso:staff_domains")
