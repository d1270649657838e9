"""Console pages for API clients (``apiclient.manage``) and, for platform staff, the signing keys.

Thin: parse, select, call one service, render. Ids in URLs go through the
tenant-scoped selectors, so another tenant's client is a 404. A new secret
(on create and on rotate) is rendered straight into the POST's answer and is
never stored, redirected through a session or logged: closing the page loses it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.access.decisions import authorize
from apps.access.decorators import TenantRequest, platform_view, tenant_view
from apps.access.escalation import AccessError
from apps.catalog import selectors as catalog_selectors
from apps.core.shortcuts import found_or_404
from apps.keys import conf, selectors, services
from apps.keys.credentials import reminders
from apps.keys.forms import (
    ActivityForm,
    ApiClientForm,
    DisableForm,
    ExplainForm,
    RateLimitForm,
    RevokeKeyForm,
    RotateForm,
    TokenPolicyForm,
)
from apps.keys.models import ApiClient

APICLIENT_MANAGE = "apiclient.manage"


def _client(request: TenantRequest, pk: int) -> ApiClient:
    return found_or_404(selectors.apiclient_get(tenant=request.tenant, pk=pk))


def _secret_page(request: TenantRequest, client: ApiClient, secret: str, *, new_client: bool) -> HttpResponse:
    context = {
        "client": client,
        "secret": secret,
        "new_client": new_client,
        "token_url": conf.issuer() + "/api/v1/oauth/token",
        "audience": (client.audiences or [conf.default_audience()])[0],
    }
    response = render(request, "keys/client_secret.html", context)
    response["Cache-Control"] = "no-store"  # the secret must not stay in any cache
    return response


def _policy_initial(request: TenantRequest) -> dict[str, Any]:
    policy = selectors.token_policy_of(tenant=request.tenant)
    return {"token_lifetime": policy.token_lifetime, "rate_limit_per_minute": policy.rate_limit_per_minute}


@tenant_view(APICLIENT_MANAGE)
def client_list(request: TenantRequest) -> HttpResponse:
    context = {
        "clients": selectors.apiclient_list(tenant=request.tenant),
        "policy_form": TokenPolicyForm(initial=_policy_initial(request)),
    }
    return render(request, "keys/client_list.html", context)


@tenant_view(APICLIENT_MANAGE)
def client_create(request: TenantRequest) -> HttpResponse:
    form = ApiClientForm(request.POST or None, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        try:
            created = services.apiclient_create(
                tenant=request.tenant,
                name=form.cleaned_data["name"],
                builtin_role=form.cleaned_data["builtin_role"],
                role=form.cleaned_data["role_obj"],
                audiences=form.cleaned_data["audience_list"],
                signing_alg=form.cleaned_data["signing_alg"],
                actor=request.membership,
            )
        except (services.KeysError, AccessError) as exc:
            form.add_error(None, str(exc))
        else:
            return _secret_page(request, created.client, created.secret, new_client=True)
    return render(request, "keys/client_form.html", {"form": form}, status=400 if form.errors else 200)


@tenant_view(APICLIENT_MANAGE)
def client_detail(request: TenantRequest, pk: int) -> HttpResponse:
    """The client, its secrets, and "explain access" for it (a what-if, never logged as a denial)."""
    client = _client(request, pk)
    explain = ExplainForm(request.GET if "action" in request.GET else None)
    decision, resource = None, None
    if explain.is_bound and explain.is_valid():
        kind, _, ident = explain.cleaned_data["resource"].partition(":")
        if kind:
            resource = _visible_resource(request, kind, ident)
            if resource is None:
                explain.add_error(
                    "resource", "No dataset or tool you can see has that id (use dataset:<id> or tool:<id>)."
                )
        if not explain.errors:
            decision = authorize(
                client, explain.cleaned_data["action"], resource, tenant=request.tenant, log_denial=False
            )
    context: dict[str, Any] = {
        "client": client,
        "secrets": selectors.secret_list(client=client),
        "rotate_form": RotateForm(),
        "rate_form": RateLimitForm(initial={"rate_limit_per_minute": client.rate_limit_per_minute}),
        "disable_form": DisableForm(),
        "explain": explain,
        "decision": decision,
        "resource": resource,
    }
    return render(request, "keys/client_detail.html", context, status=400 if explain.errors else 200)


def _visible_resource(request: TenantRequest, kind: str, ident: str) -> Any:
    # Only what the asking member may see themselves: the page must not reveal other objects.
    if not (ident.isascii() and ident.isdigit()) or len(ident) > 18:
        return None
    if kind == "dataset":
        return catalog_selectors.dataset_get(tenant=request.tenant, subject=request.membership, pk=int(ident))
    if kind == "tool":
        return catalog_selectors.tool_get(tenant=request.tenant, subject=request.membership, pk=int(ident))
    return None


@tenant_view(APICLIENT_MANAGE)
@require_POST
def client_rotate(request: TenantRequest, pk: int) -> HttpResponse:
    client = _client(request, pk)
    form = RotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The overlap must be between 0 and 720 hours.")
        return redirect("keys:client_detail", tenant_slug=request.tenant.slug, pk=client.pk)
    secret = services.apiclient_secret_rotate(
        client=client, overlap=timedelta(hours=form.cleaned_data["overlap_hours"]), actor=request.membership
    )
    return _secret_page(request, client, secret, new_client=False)


@tenant_view(APICLIENT_MANAGE)
@require_POST
def secret_revoke(request: TenantRequest, pk: int, secret_id: int) -> HttpResponse:
    client = _client(request, pk)
    secret = found_or_404(selectors.secret_get(client=client, pk=secret_id))
    services.apiclient_secret_revoke(secret=secret, actor=request.membership)
    messages.success(request, f"Secret …{secret.hint} revoked.")
    return redirect("keys:client_detail", tenant_slug=request.tenant.slug, pk=client.pk)


@tenant_view(APICLIENT_MANAGE)
@require_POST
def client_disable(request: TenantRequest, pk: int) -> HttpResponse:
    client = _client(request, pk)
    form = DisableForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    services.apiclient_disable(client=client, actor=request.membership, reason=reason)
    messages.success(request, f"“{client.name}” is disabled; its tokens stop working now.")
    return redirect("keys:client_detail", tenant_slug=request.tenant.slug, pk=client.pk)


@tenant_view(APICLIENT_MANAGE)
@require_POST
def client_enable(request: TenantRequest, pk: int) -> HttpResponse:
    client = _client(request, pk)
    try:
        services.apiclient_enable(client=client, actor=request.membership)
    except AccessError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"“{client.name}” is enabled; it needs a new token.")
    return redirect("keys:client_detail", tenant_slug=request.tenant.slug, pk=client.pk)


@tenant_view(APICLIENT_MANAGE)
@require_POST
def token_policy(request: TenantRequest) -> HttpResponse:
    form = TokenPolicyForm(request.POST)
    if form.is_valid():
        services.token_policy_set(
            tenant=request.tenant,
            token_lifetime=form.cleaned_data["token_lifetime"],
            rate_limit_per_minute=form.cleaned_data["rate_limit_per_minute"],
            actor=request.membership,
        )
        messages.success(request, "Token policy saved; new tokens use the lifetime, API calls the limit at once.")
    else:
        messages.error(
            request, "The token lifetime must be between 60 and 900 seconds, the rate limit at least 1 (or empty)."
        )
    return redirect("keys:client_list", tenant_slug=request.tenant.slug)


@tenant_view(APICLIENT_MANAGE)
@require_POST
def client_rate_limit(request: TenantRequest, pk: int) -> HttpResponse:
    client = _client(request, pk)
    form = RateLimitForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The rate limit must be a whole number of requests a minute, at least 1 (or empty).")
    else:
        limit = form.cleaned_data["rate_limit_per_minute"]
        services.apiclient_rate_limit_set(client=client, rate_limit_per_minute=limit, actor=request.membership)
        messages.success(request, f"Rate limit saved: {limit or 'the tenant default'}; it applies from the next call.")
    return redirect("keys:client_detail", tenant_slug=request.tenant.slug, pk=client.pk)


@tenant_view(APICLIENT_MANAGE)
def client_activity(request: TenantRequest, pk: int) -> HttpResponse:
    """Token activity: hourly use counts of the last 48 hours and the failures, one keyset page at a time."""
    client = _client(request, pk)
    form = ActivityForm(request.GET)
    cursor = form.cleaned_data["cursor"] if form.is_valid() else None
    hours = selectors.token_use_hourly(client=client)
    context: dict[str, Any] = {
        "client": client,
        "form": form,
        "hours": hours,
        "total": sum(row.count for row in hours),
        "limited": sum(row.limited for row in hours),
        "window_hours": selectors.ACTIVITY_HOURS,
        "failures": selectors.client_failures(client=client, cursor=cursor or None) if form.is_valid() else None,
    }
    return render(request, "keys/client_activity.html", context, status=400 if form.errors else 200)


# --- platform staff: signing keys ----------------------------------------------------------------


@platform_view
def signing_key_list(request: HttpRequest) -> HttpResponse:
    context = {
        "keys": selectors.signing_key_list(),
        "form": RevokeKeyForm(),
        "rotation_days": conf.rotation_days(),
        # An active key older than its schedule: the automatic rotation failed (#13; staff are also e-mailed).
        "overdue": reminders.signing_key_items(now=timezone.now()),
    }
    return render(request, "keys/signing_key_list.html", context)


@platform_view
@require_POST
def signing_key_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """Emergency rotation: the key is refused at once everywhere and a new one signs."""
    key = found_or_404(selectors.signing_key_get(pk=pk))
    form = RevokeKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the key is revoked.")
    else:
        services.signing_key_revoke(key=key, reason=form.cleaned_data["reason"], actor=request.user)
        messages.success(request, f"Key {key.kid} revoked; tokens it signed are refused from now on.")
    return redirect("platform:signing_keys")
