"""Access console pages: roles and their bindings, object grants, explain access, denied checks.

Thin: parse, select, call one service, render or redirect. Every view declares
its permission with ``tenant_view`` (role.manage for roles, grants and
explain; audit.read for the decision log). Ids in URLs and forms are looked
up only inside ``request.tenant`` and before the method is checked, so
another tenant's id is a 404 (URL) or a form error (form) whatever the method.
Every change goes through ``apps.access.services``, which audits it.

htmx: the binding list of a role and the grants table are partials
(``{% partialdef %}``); an htmx request gets the fragment, anything else the
full page or a redirect, so every action also works without JavaScript.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.paginator import Paginator
from django.db import IntegrityError
from django.http import Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from apps.access import selectors, services
from apps.access.decisions import authorize, held_permissions
from apps.access.decorators import TenantRequest, tenant_view
from apps.access.forms import (
    BindingForm,
    DeniedFilterForm,
    ExplainForm,
    GrantForm,
    GrantsFilterForm,
    RoleDeleteForm,
    RoleForm,
)
from apps.access.models import Role
from apps.access.permissions import OBJECT_ACTIONS, PERMISSIONS, Permission
from apps.access.services import AccessError
from apps.catalog import selectors as catalog_selectors
from apps.core.htmx import is_htmx, render_page
from apps.core.shortcuts import found_or_404
from apps.tenants.models import Membership

ROLES_PAGE_SIZE = 50
GRANTS_PAGE_SIZE = 25
DENIED_PAGE_SIZE = 50
ROLE_MANAGE = "role.manage"
AUDIT_READ = "audit.read"


# --- helpers ------------------------------------------------------------------------------------


def _held(request: TenantRequest) -> frozenset[str]:
    return held_permissions(request.membership, tenant=request.tenant)


def _role_or_404(request: TenantRequest, role_id: int) -> Role:
    return found_or_404(selectors.role_get(tenant=request.tenant, role_id=role_id), "No such role")


def _perms(role: Role) -> list[Permission]:
    """The catalog entries of a role's permissions, in catalog order."""
    granted = set(role.permissions)
    return [permission for name, permission in PERMISSIONS.items() if name in granted]


def _url(request: TenantRequest, name: str, **kwargs: Any) -> str:
    return reverse(f"access:{name}", kwargs={"tenant_slug": request.tenant.slug, **kwargs})


def _posted(request: TenantRequest) -> Any:
    """The POST data for a bound form, even when empty (an empty POST is still a submission)."""
    return request.POST if request.method == "POST" else None


# --- roles --------------------------------------------------------------------------------------


@tenant_view(ROLE_MANAGE)
@require_safe
def role_list(request: TenantRequest) -> HttpResponse:
    """Built-in and custom roles with their permissions and binding counts, and the permission catalog.

    Needs role.manage. One query for the page of roles (plus the count),
    whatever the number of roles or bindings.
    """
    page = Paginator(selectors.role_list(tenant=request.tenant), ROLES_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "page": page,
        "rows": [(role, _perms(role)) for role in page.object_list],
        "catalog": list(PERMISSIONS.values()),
    }
    return render(request, "access/role_list.html", context)


@tenant_view(ROLE_MANAGE)
@require_http_methods(["GET", "HEAD", "POST"])
def role_create(request: TenantRequest) -> HttpResponse:
    """Create a custom role (role.manage). ``?copy=<role id>`` starts from another role's permissions.

    Unknown permission names, a taken key or name, and permissions the actor
    does not hold are form errors (400) and nothing is saved.
    """
    initial: dict[str, Any] = {}
    copy = request.GET.get("copy", "")
    if copy:
        if not copy.isdigit():
            raise Http404("No such role")
        source = _role_or_404(request, int(copy))
        initial = {
            "permissions": list(source.permissions),
            "description": source.description,
            "clearance": source.clearance,
        }
    form = RoleForm(_posted(request), tenant=request.tenant, held=_held(request), initial=initial)
    if request.method == "POST" and form.is_valid():
        try:
            role = services.role_create(
                tenant=request.tenant,
                key=form.cleaned_data["key"],
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                permissions=form.cleaned_data["permissions"],
                clearance=form.cleaned_data["clearance"],
                actor=request.membership,
            )
        except AccessError as exc:
            form.add_error(None, str(exc))
        except IntegrityError:
            # Someone took the key or name between our check and the insert.
            form.add_error(None, "A role with this key or name was just created. Choose another.")
        else:
            messages.success(request, f"Role “{role.name}” created. Bind it to members or groups below.")
            return redirect(_url(request, "role_detail", role_id=role.pk))
    status = 400 if form.errors else 200
    return render(request, "access/role_form.html", {"form": form, "role": None}, status=status)


@tenant_view(ROLE_MANAGE)
def role_detail(request: TenantRequest, role_id: int) -> HttpResponse:
    """One role: its permissions, and its bindings to members and IdP groups with add and remove (role.manage)."""
    role = _role_or_404(request, role_id)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    return render(request, "access/role_detail.html", _detail_context(request, role))


def _detail_context(
    request: TenantRequest, role: Role, *, form: BindingForm | None = None, notice: str = "", error: str = ""
) -> dict[str, Any]:
    held = _held(request)
    return {
        "role": role,
        "perms": _perms(role),
        "bindings": selectors.role_bindings(tenant=request.tenant, role=role),
        "binding_form": form or BindingForm(tenant=request.tenant, role=role, held=held),
        "can_bind": set(role.permissions) <= held,
        "unheld": sorted(set(role.permissions) - held),
        "notice": notice,
        "error": error,
    }


def _readonly(request: TenantRequest, role: Role) -> HttpResponse:
    """Built-in roles are read-only: edits and deletes are refused with an explanation (400)."""
    return render(request, "access/role_readonly.html", {"role": role}, status=400)


@tenant_view(ROLE_MANAGE)
@require_http_methods(["GET", "HEAD", "POST"])
def role_edit(request: TenantRequest, role_id: int) -> HttpResponse:
    """Edit a custom role's name, description and permissions (role.manage); built-in roles answer 400."""
    role = _role_or_404(request, role_id)
    if role.builtin:
        return _readonly(request, role)
    form = RoleForm(_posted(request), tenant=request.tenant, held=_held(request), role=role)
    if request.method == "POST" and form.is_valid():
        try:
            role = services.role_update(
                role=role,
                name=form.cleaned_data["name"],
                description=form.cleaned_data["description"],
                permissions=form.cleaned_data["permissions"],
                clearance=form.cleaned_data["clearance"],
                actor=request.membership,
            )
        except AccessError as exc:
            form.add_error(None, str(exc))
        except IntegrityError:
            form.add_error("name", "Another role already has this name.")
        else:
            messages.success(request, f"Role “{role.name}” saved.")
            return redirect(_url(request, "role_detail", role_id=role.pk))
    status = 400 if form.errors else 200
    return render(request, "access/role_form.html", {"form": form, "role": role}, status=status)


@tenant_view(ROLE_MANAGE)
@require_http_methods(["GET", "HEAD", "POST"])
def role_delete(request: TenantRequest, role_id: int) -> HttpResponse:
    """Delete a custom role (role.manage). GET previews who loses what; POST deletes.

    A role still bound needs the confirmation box ticked (the service is then
    called with ``force=True``); without it the page explains and nothing is
    deleted (400). Built-in roles answer 400.
    """
    role = _role_or_404(request, role_id)
    if role.builtin:
        return _readonly(request, role)
    form = RoleDeleteForm(_posted(request))
    error = ""
    if request.method == "POST" and form.is_valid():
        try:
            services.role_delete(role=role, force=form.cleaned_data["confirm"], actor=request.membership)
        except AccessError as exc:
            error = str(exc)
        else:
            messages.success(request, f"Role “{role.name}” deleted.")
            return redirect(_url(request, "role_list"))
    context = {
        "role": role,
        "form": form,
        "error": error,
        "preview": services.role_delete_preview(role=role),
        "object_grants": selectors.role_object_grant_counts(tenant=request.tenant, role=role),
    }
    return render(request, "access/role_delete.html", context, status=400 if error else 200)


# --- bindings -----------------------------------------------------------------------------------


@tenant_view(ROLE_MANAGE)
def binding_add(request: TenantRequest, role_id: int) -> HttpResponse:
    """Bind a role to a member of this tenant or to an IdP group (role.manage). POST only.

    htmx gets the refreshed binding list; anything else a redirect (or the
    role page with the form's errors, 400).
    """
    role = _role_or_404(request, role_id)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    form = BindingForm(request.POST, tenant=request.tenant, role=role, held=_held(request))
    if form.is_valid():
        member, group = form.cleaned_data["member"], form.cleaned_data["idp_group"]
        try:
            services.binding_create(role=role, membership=member, idp_group=group, actor=request.membership)
        except (AccessError, IntegrityError) as exc:
            form.add_error(None, str(exc) if isinstance(exc, AccessError) else "That binding was just added.")
        else:
            holder = member.user.email if member is not None else f"everyone in the group “{group}”"
            notice = f"{holder} now holds {role.name}."
            if is_htmx(request):
                return render_page(
                    request,
                    "access/role_detail.html",
                    _detail_context(request, role, notice=notice),
                    partial="bindings",
                )
            messages.success(request, notice[0].upper() + notice[1:])
            return redirect(_url(request, "role_detail", role_id=role.pk))
    context = _detail_context(request, role, form=form)
    if is_htmx(request):
        return render_page(request, "access/role_detail.html", context, partial="bindings")
    return render(request, "access/role_detail.html", context, status=400)


@tenant_view(ROLE_MANAGE)
def binding_remove(request: TenantRequest, role_id: int, binding_id: int) -> HttpResponse:
    """Remove one binding of a role (role.manage). POST only; the holder loses the role at once."""
    role = _role_or_404(request, role_id)
    binding = selectors.binding_get(tenant=request.tenant, role=role, binding_id=binding_id)
    if binding is None:
        raise Http404("No such binding")
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    holder = binding.membership.user.email if binding.membership_id else f"the group “{binding.idp_group}”"
    services.binding_delete(binding=binding, actor=request.membership)
    notice = f"{holder[0].upper()}{holder[1:]} no longer holds {role.name} through this binding."
    if is_htmx(request):
        return render_page(
            request, "access/role_detail.html", _detail_context(request, role, notice=notice), partial="bindings"
        )
    messages.success(request, notice)
    return redirect(_url(request, "role_detail", role_id=role.pk))


# --- object grants ------------------------------------------------------------------------------


def _grants_context(
    request: TenantRequest,
    *,
    kind: str,
    page_number: int,
    form: GrantForm | None = None,
    notice: str = "",
    error: str = "",
) -> dict[str, Any]:
    """Everything the grants page shows; the query count does not depend on the rows shown."""
    tenant, subject = request.tenant, request.membership
    if kind == "tool":
        objects = catalog_selectors.tool_list(tenant=tenant, subject=subject)
    else:
        objects = catalog_selectors.dataset_list(tenant=tenant, subject=subject).select_related(None)
    page = Paginator(objects, GRANTS_PAGE_SIZE).get_page(page_number)
    actions = [action for action, (_, model, _) in OBJECT_ACTIONS.items() if model == kind]
    return {
        "kind": kind,
        "kinds": GrantsFilterForm.KINDS,
        "page": page,
        "rows": selectors.object_grants(tenant=tenant, objects=list(page.object_list)),
        "actions": actions,
        "tenant_wide": [
            (action, PERMISSIONS[action], roles)
            for action, roles in selectors.tenant_wide_roles(tenant=tenant, actions=actions).items()
        ],
        "grant_form": form or GrantForm(tenant=tenant, subject=subject, initial={"action": actions[0]}),
        "grants_url": _url(request, "grants"),
        "notice": notice,
        "error": error,
    }


def _grants_url(request: TenantRequest, kind: str, page: int = 1) -> str:
    query = {"kind": kind, **({"page": page} if page > 1 else {})}
    return f"{_url(request, 'grants')}?{urlencode(query)}"


@tenant_view(ROLE_MANAGE)
@require_safe
def grants(request: TenantRequest) -> HttpResponse:
    """Who may do what on each dataset or tool, and why (role.manage).

    ``?kind=dataset|tool`` and ``?page=``: the tenant-wide roles granting each
    object action, and the object grants (to roles and members) of the page's
    objects, read in a fixed number of queries. A bad ``kind`` is 400.
    """
    filters = GrantsFilterForm(request.GET)
    if not filters.is_valid():
        context = _grants_context(request, kind="dataset", page_number=1)
        context["filter_errors"] = filters.errors
        return render_page(request, "access/grants.html", context, partial="results", status=400)
    context = _grants_context(request, kind=filters.chosen_kind, page_number=filters.chosen_page)
    return render_page(request, "access/grants.html", context, partial="results")


@tenant_view(ROLE_MANAGE)
@require_http_methods(["POST"])
def grant_add(request: TenantRequest) -> HttpResponse:
    """Grant one object action to a role or a member (role.manage). POST; redirects to the object's list.

    Ids of another tenant, a wrong action for the object, or an action the
    actor does not hold on it are form errors: the grants page answers 400.
    """
    form = GrantForm(request.POST, tenant=request.tenant, subject=request.membership)
    if form.is_valid():
        data = form.cleaned_data
        try:
            services.grant_assign(
                action=data["action"],
                obj=data["obj"],
                role=data["role"],
                membership=data["membership"],
                actor=request.membership,
            )
        except AccessError as exc:
            form.add_error(None, str(exc))
        else:
            holder = f"role {data['role'].name}" if data["role"] else data["membership"].user.email
            messages.success(request, f"Granted {data['action']} on “{data['obj']}” to {holder}.")
            return redirect(_grants_url(request, data["obj"]._meta.model_name))
    kind = str(request.POST.get("target", "")).split(":", 1)[0]
    context = _grants_context(request, kind="tool" if kind == "tool" else "dataset", page_number=1, form=form)
    return render(request, "access/grants.html", context, status=400)


@tenant_view(ROLE_MANAGE)
@require_http_methods(["POST"])
def grant_revoke(request: TenantRequest) -> HttpResponse:
    """Revoke one object grant (role.manage). POST; htmx gets the refreshed table, others a redirect.

    The form carries ``kind`` and ``page`` of the table it came from, so the
    same page is shown again.
    """
    form = GrantForm(request.POST, tenant=request.tenant, subject=request.membership, revoke=True)
    where = GrantsFilterForm(request.POST)
    kind, page = where.chosen_kind, where.chosen_page
    if not form.is_valid():
        errors = "; ".join(str(error) for errors in form.errors.values() for error in errors)
        error = f"Nothing was revoked: {errors}"
        if is_htmx(request):
            context = _grants_context(request, kind=kind, page_number=page, error=error)
            return render_page(request, "access/grants.html", context, partial="results")
        context = _grants_context(request, kind=kind, page_number=page, error=error)
        return render(request, "access/grants.html", context, status=400)
    data = form.cleaned_data
    services.grant_revoke(
        action=data["action"],
        obj=data["obj"],
        role=data["role"],
        membership=data["membership"],
        actor=request.membership,
    )
    holder = f"role {data['role'].name}" if data["role"] else data["membership"].user.email
    notice = f"Revoked {data['action']} on “{data['obj']}” from {holder}."
    if is_htmx(request):
        context = _grants_context(request, kind=kind, page_number=page, notice=notice)
        return render_page(request, "access/grants.html", context, partial="results")
    messages.success(request, notice)
    return redirect(_grants_url(request, kind, page))


# --- explain ------------------------------------------------------------------------------------


@tenant_view(ROLE_MANAGE)
@require_safe
def explain(request: TenantRequest) -> HttpResponse:
    """What-if: would this member be allowed this action (on this dataset or tool), and by which path?

    Needs role.manage: the answer lays open the tenant's whole role and grant
    configuration for any member and object, which is the role manager's
    domain. A GET form (bookmarkable); bad ids are form errors (400). The
    decision is computed with ``log_denial=False``: it is a question, not an
    access attempt, so nothing enters the decision log.
    """
    submitted = any(name in request.GET for name in ("member", "action", "resource"))
    form = ExplainForm(request.GET if submitted else None, tenant=request.tenant, subject=request.membership)
    context: dict[str, Any] = {"form": form, "decision": None, "roles": None}
    if submitted and form.is_valid():
        member: Membership = form.cleaned_data["member"]
        resource = form.cleaned_data["resource_obj"]
        context["decision"] = authorize(
            member, form.cleaned_data["action"], resource, tenant=request.tenant, log_denial=False
        )
        context["member"] = member
        context["resource"] = resource
        context["resource_kind"] = resource._meta.model_name if resource is not None else ""
        context["permission"] = PERMISSIONS[form.cleaned_data["action"]]
        context["roles"] = selectors.member_roles(tenant=request.tenant, membership=member)
    return render(request, "access/explain.html", context, status=400 if form.errors else 200)


# --- denied checks ------------------------------------------------------------------------------


@tenant_view(AUDIT_READ)
@require_safe
def denied(request: TenantRequest) -> HttpResponse:
    """Refused authorisations, newest first, with a count by (subject, action) — where an access review starts.

    Needs audit.read. Filters: subject (e-mail or member id), action, date
    range; keyset pagination. Invalid filters or cursor answer 400 with the
    form's errors. The summary is one GROUP BY over the filtered range (top 50).
    """
    form = DeniedFilterForm(request.GET)
    list_url = _url(request, "denied")
    context: dict[str, Any] = {"form": form, "list_url": list_url, "page": None}
    if not form.is_valid():
        return render_page(request, "access/denied.html", context, partial="results", status=400)
    filters = form.filters()
    page = selectors.denied_page(
        tenant=request.tenant, filters=filters, cursor=form.cleaned_data["cursor"] or None, size=DENIED_PAGE_SIZE
    )
    query = form.query_string()
    context.update(
        page=page,
        summary=selectors.denied_summary(tenant=request.tenant, filters=filters),
        cursor=form.cleaned_data["cursor"],
        newest_url=f"{list_url}?{query}" if query else list_url,
        older_url=f"{list_url}?{form.query_string(cursor=page.next_cursor)}" if page.next_cursor else "",
        can_explain=request.can(ROLE_MANAGE),
        explain_url=_url(request, "explain"),
    )
    return render_page(request, "access/denied.html", context, partial="results")
