"""Credential pages under /t/<tenant>/keys/credentials/ (``key.manage``): list, add, edit, check, rotate, due.

Thin: parse, select, call one service, render or redirect. Ids in URLs go
through the tenant-scoped selector, so another tenant's credential is a 404.
The rotate view may receive a new secret value in its POST: Django's
``sensitive_post_parameters`` keeps it out of error reports, the form never
renders it back, and it goes straight to the service (which writes it to the
vault and forgets it).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_POST

from apps.access.decorators import TenantRequest, tenant_view
from apps.core.htmx import render_page
from apps.core.shortcuts import found_or_404
from apps.keys.credentials import adapters, selectors, services
from apps.keys.credentials.forms import (
    CredentialFilterForm,
    CredentialForm,
    CredentialSettingsForm,
    RecordRotationForm,
    RotateForm,
)
from apps.keys.credentials.services import CredentialError, CredentialInput
from apps.keys.models import Credential

KEY_MANAGE = "key.manage"
PAGE_SIZE = 25


def _credential(request: TenantRequest, pk: int) -> Credential:
    return found_or_404(selectors.credential_get(tenant=request.tenant, pk=pk))


def _detail(request: TenantRequest, credential: Credential) -> HttpResponse:
    return redirect("credentials:detail", tenant_slug=request.tenant.slug, pk=credential.pk)


def _detail_or_list(request: TenantRequest, credential: Credential) -> HttpResponse:
    """Back to the credential, or to the list when it was removed meanwhile (its page would be a 404)."""
    if selectors.credential_get(tenant=request.tenant, pk=credential.pk) is None:
        return redirect("credentials:list", tenant_slug=request.tenant.slug)
    return _detail(request, credential)


def _input(form: CredentialForm) -> CredentialInput:
    data = form.cleaned_data
    return CredentialInput(
        name=data["name"],
        provider=data["provider"],
        environment=data["environment"],
        purpose=data["purpose"],
        owner=data["owner"],
        reference=data["reference"],
        rotation_interval_days=data["rotation_interval_days"],
    )


@tenant_view(KEY_MANAGE)
def credential_list(request: TenantRequest) -> HttpResponse:
    """Every credential reference, soonest due first, 25 a page, filterable (htmx swaps just the table)."""
    filter_form = CredentialFilterForm(request.GET)
    rows = selectors.credential_list(tenant=request.tenant, filters=filter_form.filters())
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    context: dict[str, Any] = {
        "filter_form": filter_form,
        "page": page,
        "today": selectors.today(),
        "settings_form": CredentialSettingsForm(
            initial={"allow_vault_writes": selectors.credential_settings_of(tenant=request.tenant).allow_vault_writes}
        ),
    }
    status = 400 if filter_form.is_bound and filter_form.errors else 200
    return render_page(
        request, "keys/credential_list.html", context, partial="keys/partials/_credential_table.html", status=status
    )


@tenant_view(KEY_MANAGE)
def credential_create(request: TenantRequest) -> HttpResponse:
    form = CredentialForm(request.POST or None, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        try:
            credential = services.credential_create(
                tenant=request.tenant,
                data=_input(form),
                last_rotated_at=form.cleaned_data.get("last_rotated_on"),
                actor=request.membership,
            )
        except CredentialError as exc:
            form.add_error(None, str(exc))
        else:
            due = f"{credential.next_due_on:%-d %b %Y}"
            messages.success(request, f"“{credential.name}” added; the next rotation is due {due}.")
            return _detail(request, credential)
    context = {"form": form, "credential": None}
    return render(request, "keys/credential_form.html", context, status=400 if form.errors else 200)


@tenant_view(KEY_MANAGE)
def credential_edit(request: TenantRequest, pk: int) -> HttpResponse:
    credential = _credential(request, pk)
    initial = {
        "name": credential.name,
        "provider": credential.provider,
        "environment": credential.environment,
        "purpose": credential.purpose,
        "owner": credential.owner_id,
        "reference": credential.reference,
        "rotation_interval_days": credential.rotation_interval_days,
    }
    form = CredentialForm(request.POST or None, initial=initial, tenant=request.tenant, editing=True)
    if request.method == "POST" and form.is_valid():
        try:
            services.credential_update(credential=credential, data=_input(form), actor=request.membership)
        except CredentialError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, "Saved.")
            return _detail(request, credential)
    context = {"form": form, "credential": credential}
    return render(request, "keys/credential_form.html", context, status=400 if form.errors else 200)


@tenant_view(KEY_MANAGE)
def credential_detail(request: TenantRequest, pk: int) -> HttpResponse:
    credential = _credential(request, pk)
    writable, why_not = services.may_write(credential)
    context: dict[str, Any] = {
        "credential": credential,
        "today": selectors.today(),
        "days_left": (credential.next_due_on - selectors.today()).days,
        "rotations": selectors.rotation_list(credential=credential),
        "reminders": selectors.reminder_list(tenant=request.tenant, credential=credential),
        "may_write": writable,
        "why_not": why_not,
        "rotate_form": RotateForm(),
        "record_form": RecordRotationForm(initial={"rotated_on": selectors.today()}),
    }
    return render(request, "keys/credential_detail.html", context)


@tenant_view(KEY_MANAGE)
@require_POST
def credential_delete(request: TenantRequest, pk: int) -> HttpResponse:
    credential = _credential(request, pk)
    services.credential_delete(credential=credential, actor=request.membership)
    messages.success(request, f"“{credential.name}” removed from Bastion (the secret itself was not touched).")
    return redirect("credentials:list", tenant_slug=request.tenant.slug)


@tenant_view(KEY_MANAGE)
@require_POST
def credential_check(request: TenantRequest, pk: int) -> HttpResponse:
    """Resolve the reference now; the page shows the outcome (status, version, created time — never the value)."""
    credential = _credential(request, pk)
    result = services.credential_check(credential=credential, actor=request.membership)
    if result.ok:
        version = f" (version {result.version})" if result.version is not None else ""
        messages.success(request, f"Resolved{version}.")
    else:
        messages.error(request, f"Check failed: {result.detail}")
    return _detail(request, credential)


@sensitive_post_parameters("new_value")
@tenant_view(KEY_MANAGE)
@require_POST
@sensitive_variables("form")
def credential_rotate(request: TenantRequest, pk: int) -> HttpResponse:
    credential = _credential(request, pk)
    form = RotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "A new secret value is 16 to 4096 characters (or leave it empty to generate one).")
        return _detail(request, credential)
    try:
        result = services.credential_rotate(
            credential=credential, actor=request.membership, new_value=form.cleaned_data["new_value"] or None
        )
    except CredentialError as exc:
        messages.error(request, str(exc))
        return _detail_or_list(request, credential)
    if result.ok:
        messages.success(request, f"New version {result.version} written to the vault; the schedule starts again.")
    else:
        messages.error(request, f"Not rotated: {result.detail}")
    return _detail(request, credential)


@tenant_view(KEY_MANAGE)
@require_POST
def credential_record(request: TenantRequest, pk: int) -> HttpResponse:
    """Record a rotation done at the provider or directly in the vault (who: the signed-in member)."""
    credential = _credential(request, pk)
    form = RecordRotationForm(request.POST)
    if form.is_valid():
        try:
            services.credential_rotation_record(
                credential=credential,
                rotated_at=form.cleaned_data["rotated_on"],
                note=form.cleaned_data["note"],
                actor=request.membership,
            )
        except CredentialError as exc:
            messages.error(request, str(exc))
            return _detail_or_list(request, credential)
        else:
            messages.success(request, "Rotation recorded.")
    else:
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        messages.error(request, f"Not recorded: {errors}")
    return _detail(request, credential)


@tenant_view(KEY_MANAGE)
@require_POST
def credential_settings(request: TenantRequest) -> HttpResponse:
    form = CredentialSettingsForm(request.POST)
    form.is_valid()  # a checkbox: absent means off, nothing else can be wrong
    allow = bool(form.cleaned_data.get("allow_vault_writes"))
    services.credential_settings_set(tenant=request.tenant, allow_vault_writes=allow, actor=request.membership)
    messages.success(request, "Vault writes are on." if allow else "Vault writes are off.")
    return redirect("credentials:list", tenant_slug=request.tenant.slug)


@tenant_view(KEY_MANAGE)
def credential_due(request: TenantRequest) -> HttpResponse:
    """Due and overdue: credentials due within 14 days or overdue, and certificates nearing expiry."""
    today = selectors.today()
    credentials = list(selectors.credentials_overdue_and_soon(tenant=request.tenant))
    others = sorted(adapters.other_items(request.tenant), key=lambda item: item.due_on)
    context: dict[str, Any] = {
        "today": today,
        "credentials": [(c, (c.next_due_on - today).days) for c in credentials],
        "others": [(item, (item.due_on - today).days) for item in others],
        "reminders": selectors.reminder_list(tenant=request.tenant),
    }
    return render(request, "keys/credential_due.html", context)
