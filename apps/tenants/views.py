"""Tenant console pages: dashboard, members, invitations.

Thin: parse, select, call one service, render or redirect. Permissions are
declared with ``tenant_view``; a membership id from the URL is looked up only
inside ``request.tenant`` (and before the method is checked), so another
tenant's id is a 404 whatever the method. Member actions answer an htmx
request with the changed table row and anything else with a redirect, so
every action also works without JavaScript.
"""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods

from apps.access import members as member_services
from apps.access.decorators import TenantRequest, public_view, tenant_view
from apps.access.services import AccessError
from apps.accounts.models import User
from apps.core.htmx import is_htmx, render_page
from apps.core.shortcuts import found_or_404
from apps.tenants import dashboard as dashboard_cards
from apps.tenants import selectors, services
from apps.tenants.forms import InvitationPasswordForm, InviteForm, MemberFilterForm, RoleForm, role_choices_for
from apps.tenants.models import Membership
from apps.tenants.services import TenantError

MEMBERS_PAGE_SIZE = 50
RECENT_EVENTS = 5


def _membership_or_404(request: TenantRequest, membership_id: int) -> Membership:
    membership = selectors.membership_get(tenant=request.tenant, membership_id=membership_id)
    return found_or_404(membership, "No such member")


def _members_url(request: TenantRequest) -> str:
    return reverse("tenants:members", kwargs={"tenant_slug": request.tenant.slug})


def _row_context(request: TenantRequest) -> dict[str, Any]:
    """What the member row partial needs to decide which controls to show."""
    return {
        "can_manage": request.can("member.manage"),
        "role_choices": role_choices_for(request.membership),
    }


def _row_response(request: TenantRequest, member: Membership, *, error: str = "", notice: str = "") -> HttpResponse:
    context = {**_row_context(request), "member": member, "row_error": error, "row_notice": notice}
    return render(request, "tenants/partials/_member_row.html", context)


def _row_answer(request: TenantRequest, member: Membership, *, error: str = "", notice: str = "") -> HttpResponse:
    """The outcome of a member action: htmx gets the changed row, anything else a message and the member list."""
    if is_htmx(request):
        return _row_response(request, member, error=error, notice=notice)
    if error:
        messages.error(request, error)
    else:
        messages.success(request, notice)
    return redirect(_members_url(request))


@public_view
@login_required
def home(request: HttpRequest) -> HttpResponse:
    """The console's landing page (``/``): send a user to their only tenant, or let them choose."""
    tenants = list(selectors.tenants_for_user(user=request.user))
    if len(tenants) == 1 and not request.user.is_staff:
        return redirect("tenants:dashboard", tenant_slug=tenants[0].slug)
    return render(request, "tenants/home.html", {"tenants": tenants})


@tenant_view("tenant.view")
def dashboard(request: TenantRequest) -> HttpResponse:
    """Overview for any member: member counts, their role, recent audit events if they hold audit.read."""
    can_audit = request.can("audit.read")
    context = {
        "counts": selectors.member_counts(tenant=request.tenant),
        "can_manage": request.can("member.manage"),
        "can_audit": can_audit,
        "recent_events": (
            selectors.recent_audit_events(tenant=request.tenant, limit=RECENT_EVENTS) if can_audit else []
        ),
        "cards": dashboard_cards.cards_for(request),
    }
    return render(request, "tenants/dashboard.html", context)


@tenant_view("tenant.view")
def member_list(request: TenantRequest) -> HttpResponse:
    """Members, 50 a page by e-mail, filterable; managers also get the invite form and row controls.

    An out-of-range or malformed ``page`` shows the nearest page; an invalid
    filter value is reported and ignored.
    """
    filter_form = MemberFilterForm(request.GET)
    members = selectors.member_list(tenant=request.tenant, **filter_form.filters())
    page = Paginator(members, MEMBERS_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        **_row_context(request),
        "filter_form": filter_form,
        "page": page,
        "counts": selectors.member_counts(tenant=request.tenant),
        "invite_form": InviteForm(actor=request.membership),
    }
    return render_page(request, "tenants/member_list.html", context, partial="tenants/partials/_member_table.html")


@tenant_view("member.manage")
def member_invite(request: TenantRequest) -> HttpResponse:
    """Invite someone by e-mail (member.manage). GET shows the form; POST invites and redirects."""
    form = InviteForm(request.POST or None, actor=request.membership)
    if request.method == "POST" and form.is_valid():
        try:
            membership = member_services.member_invite(
                tenant=request.tenant,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                actor=request.membership,
            )
        except (TenantError, AccessError) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Invitation sent to {membership.user.email}.")
            return redirect(_members_url(request))
    return render(request, "tenants/member_invite.html", {"form": form}, status=400 if form.errors else 200)


@tenant_view("member.manage")
@require_http_methods(["GET", "HEAD", "POST"])
def member_role(request: TenantRequest, membership_id: int) -> HttpResponse:
    """Change a member's role (member.manage). htmx gets the updated row; others a page or redirect."""
    member = _membership_or_404(request, membership_id)
    form = RoleForm(request.POST or None, actor=request.membership, initial={"role": member.role})
    error = ""
    if request.method == "POST":
        if form.is_valid():
            try:
                member = member_services.member_change_role(
                    membership=member,
                    role=form.cleaned_data["role"],
                    actor=request.membership,
                )
            except (TenantError, AccessError) as exc:
                error = str(exc)
            else:
                return _row_answer(
                    request, member, notice=f"{member.user.email} is now {member.get_role_display().lower()}."
                )
        else:
            error = " ".join(form.errors.get("role", ["Choose a role."]))
    if is_htmx(request):
        return _row_response(request, member, error=error)
    context = {"form": form, "member": member, "error": error}
    return render(request, "tenants/member_role.html", context, status=400 if error else 200)


def _status_change(request: TenantRequest, membership_id: int, *, disabled: bool) -> HttpResponse:
    member = _membership_or_404(request, membership_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        member = member_services.member_set_disabled(membership=member, disabled=disabled, actor=request.membership)
    except (TenantError, AccessError) as exc:
        return _row_answer(request, member, error=str(exc))
    return _row_answer(request, member, notice=f"{member.user.email} is {'disabled' if disabled else 'enabled again'}.")


@tenant_view("member.manage")
def member_disable(request: TenantRequest, membership_id: int) -> HttpResponse:
    """Disable a membership (member.manage): the person loses access at once. POST only."""
    return _status_change(request, membership_id, disabled=True)


@tenant_view("member.manage")
def member_enable(request: TenantRequest, membership_id: int) -> HttpResponse:
    """Enable a disabled membership again (member.manage). POST only."""
    return _status_change(request, membership_id, disabled=False)


@tenant_view("member.manage")
def member_resend(request: TenantRequest, membership_id: int) -> HttpResponse:
    """Send a new invitation link to someone who has not accepted yet (member.manage). POST only."""
    member = _membership_or_404(request, membership_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        member = member_services.member_resend(membership=member, actor=request.membership)
    except (TenantError, AccessError) as exc:
        return _row_answer(request, member, error=str(exc))
    return _row_answer(request, member, notice=f"A new invitation is on its way to {member.user.email}.")


@tenant_view("member.manage")
@require_http_methods(["GET", "HEAD", "POST"])
def member_remove(request: TenantRequest, membership_id: int) -> HttpResponse:
    """Remove a member or withdraw an invitation (member.manage). GET asks to confirm; POST removes."""
    member = _membership_or_404(request, membership_id)
    error = ""
    if request.method == "POST":
        try:
            member_services.member_remove(membership=member, actor=request.membership)
        except TenantError as exc:
            error = str(exc)
        else:
            messages.success(request, f"{member.user.email} no longer has access to {request.tenant.name}.")
            return redirect(_members_url(request))
    context = {"member": member, "error": error}
    return render(request, "tenants/member_remove.html", context, status=400 if error else 200)


# --- invitations (public: the signed token is the credential) ------------------------------


def _invitation_error(request: HttpRequest, message: str, *, status: int = 400) -> HttpResponse:
    return render(request, "tenants/invitation_invalid.html", {"message": message}, status=status)


@public_view
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """Accept an invitation from its e-mailed link.

    Expired, forged or used tokens get a 400 page. Signed in as the invitee:
    confirm with a POST. Signed in as someone else: 403 with an explanation.
    Not signed in with a password already set: sign in first. Not signed in
    and no password yet: choose one (validated), which verifies the e-mail,
    activates the membership and sends the person to sign in; never logs in.
    """
    try:
        membership = services.invitation_membership(token)
    except TenantError as exc:
        return _invitation_error(request, str(exc))
    tenant, invitee = membership.tenant, membership.user
    context: dict[str, Any] = {"membership": membership, "tenant": tenant, "invitee": invitee}
    if tenant.is_suspended:
        message = f"{tenant.name} is suspended. You can accept the invitation once it is reactivated."
        return _invitation_error(request, message, status=403)
    dashboard_url = reverse("tenants:dashboard", kwargs={"tenant_slug": tenant.slug})

    if request.user.is_authenticated:
        if request.user.pk != invitee.pk:
            return render(request, "tenants/invitation_wrong_user.html", context, status=403)
        if request.method == "POST":
            try:
                services.membership_accept(membership=membership, user=cast(User, request.user))
            except TenantError as exc:
                return _invitation_error(request, str(exc))
            messages.success(request, f"Welcome to {tenant.name}.")
            return redirect(dashboard_url)
        return render(request, "tenants/invitation_confirm.html", context)

    if invitee.has_usable_password():
        login_url = f"{reverse('account_login')}?{urlencode({'next': request.path})}"
        return render(request, "tenants/invitation_sign_in.html", {**context, "login_url": login_url})

    form = InvitationPasswordForm(invitee, request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.invitation_accept_with_password(membership=membership, password=form.cleaned_data["new_password1"])
        except TenantError as exc:
            return _invitation_error(request, str(exc))
        messages.success(request, f"Your password is set and you have joined {tenant.name}. Sign in to continue.")
        return redirect(f"{reverse('account_login')}?{urlencode({'next': dashboard_url})}")
    status = 400 if form.errors else 200
    return render(request, "tenants/invitation_set_password.html", {**context, "form": form}, status=status)
