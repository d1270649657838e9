"""SSO settings pages of a tenant (under /t/<slug>/settings/sso/) and of the platform (under /platform/sso/).

Every page needs ``sso.manage``; ``sso_settings_view`` also gives each view a
``.platform`` variant for platform staff working on the platform's own
connections and policy (tenant null): connections, tests, domains, policy, groups.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

from django.contrib import messages
from django.core import signing
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.access.decorators import platform_view, tenant_view
from apps.sso import selectors, services
from apps.sso.forms import (
    ConfirmForm,
    DomainClaimForm,
    DomainRouteForm,
    EnableForm,
    OIDCConnectionForm,
    PolicyForm,
    SAMLConnectionForm,
    add_service_error,
)
from apps.sso.models import SSOConnection
from apps.sso.policy import PolicyError, policy_update
from apps.sso.services import SSOInputError, TestReport
from apps.sso.views._common import (
    DRAFT_ID_MAX_AGE,
    DRAFT_ID_SALT,
    SSO_MANAGE,
    TEST_REPORT_KEY,
    Kind,
    TenantRequest,
    _base_url,
    _settings_url,
)
from apps.sso.views.flows import _begin

# --- settings: connections ----------------------------------------------------------------------


def sso_settings_view(view: Any) -> Any:
    """``tenant_view("sso.manage")`` for the tenant's pages; ``.platform`` is the same view for platform staff.

    The platform variant (``platform_view``: staff only, 404 for everyone else)
    runs the same body with ``request.tenant`` None, which every selector and
    service reads as "the platform's" (connections and policy with tenant null).
    """
    tenant_version = tenant_view(SSO_MANAGE)(view)

    @functools.wraps(view)
    def platform_scoped(request: TenantRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        request.tenant = None
        request.membership = None
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


def _add_page_draft(request: TenantRequest, kind: str) -> SSOConnection | None:
    """The draft whose SP details this add page shows (created on the first visit, reused after).

    A POST names its draft (signed public id, so the settings land in the draft whose
    details the admin registered); ``None`` when that draft was already saved (e.g.
    from another tab). Without a readable token, the admin's one empty draft.
    """
    token = request.POST.get("draft_id", "") if request.method == "POST" else ""
    if token:
        try:
            public_id = uuid.UUID(signing.loads(token, salt=DRAFT_ID_SALT, max_age=DRAFT_ID_MAX_AGE))
        except (signing.BadSignature, ValueError, TypeError):
            pass
        else:
            return selectors.pending_draft_get(
                tenant=request.tenant,
                kind=kind,
                public_id=public_id,
                creator=request.user,
            )
    return services.connection_draft_open(tenant=request.tenant, kind=kind, actor=request.user)


@sso_settings_view
@require_http_methods(["GET", "HEAD", "POST"])
def connection_create(request: TenantRequest, kind: str) -> HttpResponse:
    """Add a SAML or OIDC connection (sso.manage). Bastion's SP details come first, then the IdP's.

    The first visit creates a draft (reused on every later visit by the same admin),
    so the entity ID, ACS URL and redirect URI shown never change and the SP metadata
    can be downloaded before anything else. Bad input (metadata, URL, certificate,
    discovery) is a form error (400) and nothing is saved.
    """
    draft = _add_page_draft(request, kind)
    form_class = _form_class(kind)
    form = form_class(request.POST or None, request.FILES or None)
    if request.method == "POST" and draft is None:
        form.is_valid()
        form.add_error(None, "This form was already used to create a connection; open the connection instead.")
    elif request.method == "POST" and form.is_valid():
        try:
            connection = services.connection_create(
                tenant=request.tenant,
                kind=kind,
                name=form.cleaned_data["name"],
                saml=form.saml_settings() if kind == Kind.SAML else None,  # type: ignore[union-attr]
                oidc_settings=form.oidc_settings() if kind == Kind.OIDC else None,  # type: ignore[union-attr]
                attribute_mapping=form.mapping(),
                preset=form.cleaned_data.get("preset", ""),
                draft=draft,
                actor=request.user,
            )
        except SSOInputError as exc:
            add_service_error(form, exc, aliases=form.error_aliases())
        else:
            messages.success(request, f"Connection “{connection.name}” saved. Run a test sign-in, then enable it.")
            return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))
    shown = draft or SSOConnection(kind=kind, tenant=request.tenant)
    context = {
        "form": form,
        "kind": kind,
        "connection": None,
        "sp": selectors.sp_details(shown, base_url=_base_url(request)),
        "sp_public_id": draft.public_id if draft else None,
        "draft_id": signing.dumps(str(draft.public_id), salt=DRAFT_ID_SALT) if draft else "",
        "presets": form.presets,
    }
    return render(request, f"sso/connection_form_{kind}.html", context, status=400 if form.errors else 200)


def _detail_context(request: TenantRequest, connection: SSOConnection) -> dict[str, Any]:
    config = connection.config or {}
    certs = [selectors.certificate_info(pem) for pem in config.get("idp_x509_certs") or []]
    domains = list(selectors.domain_list(tenant=request.tenant))
    return {
        "connection": connection,
        "config": config,
        "sp": selectors.sp_details(connection, base_url=_base_url(request)),
        "sp_public_id": connection.public_id,
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
        "domains": domains,
        "routable_domains": [d for d in domains if d.connection_id != connection.pk],
        "self_tested": (connection.self_tested or {}).get(str(request.user.pk)) == connection.trust_epoch,
    }


@sso_settings_view
@require_safe
def connection_detail(request: TenantRequest, connection_id: int) -> HttpResponse:
    """One connection: Bastion's SP details first, then the IdP settings, mapping, status and actions."""
    connection = _connection_or_404(request, connection_id)
    response = render(request, "sso/connection_detail.html", _detail_context(request, connection))
    return _allow_test_form(response, connection)


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
                actor=request.user,
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
        "sp_public_id": connection.public_id,
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
    response = render(request, "sso/test_result.html", {"connection": connection, "report": report})
    return _allow_test_form(response, connection)


def _allow_test_form(response: HttpResponse, connection: SSOConnection) -> HttpResponse:
    """Let this page's "Test sign-in" form end at the IdP.

    The policy's ``form-action 'self'`` also holds the redirects after a form
    post in Chromium, so the IdP's sign-in origin is added for this page only.
    """
    origin = selectors.idp_sign_in_origin(connection)
    if origin:
        response._csp_update = {"form-action": [origin]}  # type: ignore[attr-defined]  # read by csp.middleware
    return response


@sso_settings_view
@require_http_methods(["GET", "HEAD", "POST"])
def connection_enable(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Enable a connection (sso.manage): shows who loses password access and asks for confirmation.

    The service refuses until the admin has tested the connection as themself (#9, item 2).
    """
    connection = _connection_or_404(request, connection_id)
    form = EnableForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.connection_set_status(
                connection=connection,
                enabled=True,
                actor=request.user,
                lockout_acknowledged=form.cleaned_data["confirm"],
            )
        except SSOInputError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, f"Connection “{connection.name}” enabled: people can now sign in with it.")
            return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))
    self_tested = (connection.self_tested or {}).get(str(request.user.pk)) == connection.trust_epoch
    context = {
        "connection": connection,
        "form": form,
        "losers": selectors.password_access_losers(tenant=request.tenant),
        "self_tested": self_tested,
        "tested_at": services.parse_iso((connection.config or {}).get("tested_at")),
    }
    response = render(request, "sso/connection_enable.html", context, status=400 if form.errors else 200)
    return _allow_test_form(response, connection)


@sso_settings_view
@require_POST
def connection_disable(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Disable an enabled connection (sso.manage)."""
    connection = _connection_or_404(request, connection_id)
    try:
        services.connection_set_status(connection=connection, enabled=False, actor=request.user)
    except SSOInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Connection “{connection.name}” disabled.")
    return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))


@sso_settings_view
@require_POST
def connection_primary(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Make an enabled connection the primary one: discovery and sign-in messages name it (sso.manage)."""
    connection = _connection_or_404(request, connection_id)
    try:
        services.connection_make_primary(connection=connection, actor=request.user)
    except SSOInputError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"“{connection.name}” is now the primary connection.")
    return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))


@sso_settings_view
@require_POST
def connection_route(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Route a verified domain of the tenant to this connection, or (``unroute``) back to the primary."""
    connection = _connection_or_404(request, connection_id)
    form = DomainRouteForm(request.POST, domains=selectors.domain_list(tenant=request.tenant))
    if not form.is_valid():
        messages.error(request, "Choose one of this organisation's domains.")
    else:
        claim = form.cleaned_data["domain"]
        target = None if request.POST.get("unroute") else connection
        try:
            services.domain_route(tenant=request.tenant, domain=claim, connection=target, actor=request.user)
        except SSOInputError as exc:
            messages.error(request, exc.message)
        else:
            where = f"to “{connection.name}”" if target else "to the primary connection"
            messages.success(request, f"Sign-ins from {claim.domain} now go {where}.")
    return redirect(_settings_url(request.tenant, "detail", connection_id=connection.pk))


@sso_settings_view
@require_POST
def connection_refresh(request: TenantRequest, connection_id: int) -> HttpResponse:
    """Ask for the IdP metadata to be downloaded again now (URL-configured SAML connections)."""
    connection = _connection_or_404(request, connection_id)
    try:
        services.connection_request_metadata_refresh(connection=connection, actor=request.user)
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
            services.connection_delete(connection=connection, actor=request.user)
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
            claim = services.domain_claim(tenant=request.tenant, domain=form.cleaned_data["domain"], actor=request.user)
        except SSOInputError as exc:
            add_service_error(form, exc)
        else:
            messages.success(
                request,
                f"{claim.domain} claimed. Publish the TXT record below on {claim.domain}, then click "
                "“Check now”; Bastion also checks by itself every 15 minutes.",
            )
            return redirect(_settings_url(request.tenant, "domains"))
    claims = list(selectors.domain_list(tenant=request.tenant))
    for claim_row in claims:
        claim_row.expires_at = services.claim_expires_at(claim_row)  # type: ignore[attr-defined]
    context = {
        "form": form,
        "domains": claims,
        "pending_days": services.CLAIM_PENDING_DAYS,
    }
    return render(request, "sso/domains.html", context, status=400 if form.errors else 200)


@sso_settings_view
@require_POST
def domain_check(request: TenantRequest, domain_id: int) -> HttpResponse:
    """Look the claim's TXT record up now (sso.manage); at most once per claim every 30 seconds."""
    claim = selectors.domain_get(tenant=request.tenant, domain_id=domain_id)
    if claim is None:
        raise Http404("No such domain")
    result = services.domain_check(domain=claim, actor=request.user)
    (messages.success if result.verified else messages.warning)(request, result.message)
    return redirect(_settings_url(request.tenant, "domains"))


@sso_settings_view
@require_POST
def domain_release(request: TenantRequest, domain_id: int) -> HttpResponse:
    """Give up a domain claim (sso.manage)."""
    claim = selectors.domain_get(tenant=request.tenant, domain_id=domain_id)
    if claim is None:
        raise Http404("No such domain")
    try:
        services.domain_release(domain=claim, actor=request.user, tenant=request.tenant)
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
    form = PolicyForm(request.POST or None, initial=PolicyForm.initial_for(current), platform=request.tenant is None)
    if request.method == "POST" and form.is_valid():
        try:
            policy_update(tenant=request.tenant, actor=request.user, **form.cleaned_data)
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
        "can_manage_roles": request.can("role.manage"),
    }
    return render(request, "sso/groups.html", context)
