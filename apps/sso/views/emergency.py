"""Emergency accounts pages (#11, item 8), under /t/<slug>/sso/emergency/.

Every page declares ``sso.manage`` (admins may look); every change is for
Owners only, which the service decides (``apps.sso.emergency.is_owner``): a
refused change answers 403 and changes nothing. Another tenant's account or
sign-in id answers 404. The credentials page is the answer to the creating or
rotating POST itself: it is never stored, never cached (``no-store``) and
cannot be opened again.
"""

from __future__ import annotations

import base64

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from apps.access.decorators import TenantRequest, tenant_view
from apps.core.pagination import InvalidCursorError, keyset_page
from apps.core.shortcuts import found_or_404
from apps.sso import emergency
from apps.sso.forms import ConfirmForm, EmergencyAccountForm
from apps.sso.models import EmergencyAccount
from apps.sso.services import emergency as services
from apps.sso.views._common import SSO_MANAGE, safe_next

HISTORY_PAGE = emergency.PAGE_SIZE


def _list_url(request: TenantRequest) -> str:
    return reverse("sso_emergency:list", kwargs={"tenant_slug": request.tenant.slug})


def _account_or_404(request: TenantRequest, account_id: int) -> EmergencyAccount:
    return found_or_404(emergency.account_get(tenant=request.tenant, account_id=account_id), "No such account")


def _refused(request: TenantRequest, exc: services.EmergencyError) -> HttpResponse:
    return render(request, "sso/emergency_refused.html", {"message": exc.message}, status=403)


def _credentials_page(request: TenantRequest, credentials: services.Credentials, *, rotated: bool) -> HttpResponse:
    from allauth.mfa.adapter import get_adapter

    svg = get_adapter().build_totp_svg(credentials.totp_uri)
    context = {
        "credentials": credentials,
        "rotated": rotated,
        # A data: URI, as allauth's own TOTP page does (img-src allows data:; no inline markup or style).
        "totp_data_uri": "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode(),
    }
    response = render(request, "sso/emergency_credentials.html", context)
    add_never_cache_headers(response)  # no-store: the browser keeps no copy to show again
    return response


def _confirm_page(request: TenantRequest, account: EmergencyAccount, action: str) -> HttpResponse:
    context = {
        "account": account,
        "action": action,
        "is_owner": emergency.is_owner(request.membership),
        "owner_only": services.OWNER_ONLY,
    }
    return render(request, "sso/emergency_confirm.html", context)


@tenant_view(SSO_MANAGE)
@require_safe
def emergency_list(request: TenantRequest) -> HttpResponse:
    """The tenant's emergency accounts, the sign-ins waiting for acknowledgement and the history (keyset paged)."""
    cursor = request.GET.get("cursor") or None
    history = emergency.sign_in_history(tenant=request.tenant)
    try:
        page = keyset_page(history, cursor=cursor, size=HISTORY_PAGE)
    except InvalidCursorError:
        messages.error(request, "That page link is not valid; showing the newest sign-ins.")
        page = keyset_page(history, cursor=None, size=HISTORY_PAGE)
    context = {
        "accounts": list(emergency.account_list(tenant=request.tenant)),
        "page": page,
        "is_owner": emergency.is_owner(request.membership),
        "form": EmergencyAccountForm(),
        "login_domain": emergency.login_domain(),
    }
    return render(request, "sso/emergency_list.html", context)


@tenant_view(SSO_MANAGE)
@require_http_methods(["GET", "HEAD", "POST"])
@sensitive_variables("credentials")
def emergency_create(request: TenantRequest) -> HttpResponse:
    """Create an emergency account (Owners); the answer shows its password and TOTP secret, once."""
    is_owner = emergency.is_owner(request.membership)
    if request.method == "POST" and not is_owner:
        return _refused(request, services.EmergencyError(services.OWNER_ONLY, forbidden=True))
    form = EmergencyAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            credentials = services.account_create(
                tenant=request.tenant,
                actor=request.membership,
                label=form.cleaned_data["label"],
                role=form.cleaned_data["role"],
            )
        except services.EmergencyError as exc:
            if exc.forbidden:
                return _refused(request, exc)
            form.add_error(exc.field if exc.field in form.fields else None, exc.message)
        else:
            return _credentials_page(request, credentials, rotated=False)
    status = 400 if form.errors else 200
    context = {"form": form, "is_owner": is_owner, "owner_only": services.OWNER_ONLY}
    return render(request, "sso/emergency_form.html", context, status=status)


@tenant_view(SSO_MANAGE)
@require_http_methods(["GET", "HEAD", "POST"])
@sensitive_variables("credentials")
def emergency_rotate(request: TenantRequest, account_id: int) -> HttpResponse:
    """Confirm, then give the account a new password and TOTP secret (shown once) and end its sessions."""
    account = _account_or_404(request, account_id)
    if request.method == "POST":
        try:
            credentials = services.account_rotate(account=account, actor=request.membership)
        except services.EmergencyError as exc:
            if exc.forbidden:
                return _refused(request, exc)
            messages.error(request, exc.message)
            return redirect(_list_url(request))
        return _credentials_page(request, credentials, rotated=True)
    return _confirm_page(request, account, "rotate")


@tenant_view(SSO_MANAGE)
@require_POST
def emergency_set_disabled(request: TenantRequest, account_id: int, disabled: bool) -> HttpResponse:
    """Disable (sessions end, sign-in refused) or enable an emergency account (Owners)."""
    account = _account_or_404(request, account_id)
    try:
        services.account_set_disabled(account=account, actor=request.membership, disabled=disabled)
    except services.EmergencyError as exc:
        if exc.forbidden:
            return _refused(request, exc)
        messages.error(request, exc.message)
    else:
        verb = "disabled; its sessions ended" if disabled else "enabled"
        messages.success(request, f"Emergency account “{account.label}” {verb}.")
    return redirect(_list_url(request))


@tenant_view(SSO_MANAGE)
@require_http_methods(["GET", "HEAD", "POST"])
def emergency_delete(request: TenantRequest, account_id: int) -> HttpResponse:
    """Confirm, then delete an emergency account: its sessions end and it can never sign in again (Owners)."""
    account = _account_or_404(request, account_id)
    if request.method == "POST" and ConfirmForm(request.POST).is_valid():
        try:
            services.account_delete(account=account, actor=request.membership)
        except services.EmergencyError as exc:
            if exc.forbidden:
                return _refused(request, exc)
            messages.error(request, exc.message)
        else:
            messages.success(request, f"Emergency account “{account.label}” deleted; its sessions ended.")
        return redirect(_list_url(request))
    return _confirm_page(request, account, "delete")


@tenant_view(SSO_MANAGE)
@require_POST
def emergency_acknowledge(request: TenantRequest, sign_in_id: int) -> HttpResponse:
    """An Owner acknowledges an emergency sign-in: it leaves the dashboard (audited). Back to ``next``."""
    sign_in = emergency.sign_in_get(tenant=request.tenant, sign_in_id=sign_in_id)
    if sign_in is None:
        raise Http404("No such sign-in")
    try:
        done = services.sign_in_acknowledge(sign_in=sign_in, actor=request.membership)
    except services.EmergencyError as exc:
        return _refused(request, exc)
    if done:
        messages.success(request, f"Emergency sign-in of “{sign_in.label}” acknowledged.")
    else:
        messages.info(request, "Another Owner had already acknowledged this sign-in.")
    return redirect(safe_next(request.POST.get("next", "")) or _list_url(request))
