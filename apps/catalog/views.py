"""Catalog console pages: datasets, tools and models (thin: parse, select, call one service, render).

Every view declares its permission with ``tenant_view``; object URLs take ids
that are looked up through the tenant-scoped selectors, so another tenant's
id — or one the member may not see — is a 404. Datasets and tools can be
granted one by one, so their list and detail pages declare
``scope="any_object"``: a member whose only right is a grant on some of them
opens the pages and sees exactly those (``restrict`` in the selectors); a
member with no right to any gets 403.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect, render

from apps.access.decorators import tenant_view
from apps.catalog import permissions, selectors, services
from apps.catalog.forms import (
    AIModelFilterForm,
    AIModelForm,
    DatasetFilterForm,
    DatasetForm,
    ToolFilterForm,
    ToolForm,
    apply_service_errors,
)
from apps.core.htmx import render_page
from apps.core.shortcuts import found_or_404

PAGE_SIZE = 25


def _page(request: HttpRequest, qs: QuerySet[Any]) -> Page:
    # One COUNT and one LIMIT/OFFSET query however many rows there are.
    return Paginator(qs, PAGE_SIZE).get_page(request.GET.get("page"))


# Datasets -------------------------------------------------------------------------------------------------------


@tenant_view(permissions.DATASET_READ, scope="any_object")
def dataset_list(request: HttpRequest) -> HttpResponse:
    filters = DatasetFilterForm(request.GET)
    qs = selectors.dataset_list(tenant=request.tenant, subject=request.membership, **filters.filters())
    context = {
        "filters": filters,
        "page": _page(request, qs),
        "can_manage": request.can(permissions.DATASET_MANAGE),
    }
    return render_page(request, "catalog/dataset_list.html", context)


@tenant_view(permissions.DATASET_READ, scope="any_object")
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = found_or_404(selectors.dataset_get(tenant=request.tenant, subject=request.membership, pk=pk))
    context = {
        "dataset": dataset,
        "can_manage": request.can(permissions.DATASET_MANAGE),
    }
    return render(request, "catalog/dataset_detail.html", context)


@tenant_view(permissions.DATASET_MANAGE)
def dataset_create(request: HttpRequest) -> HttpResponse:
    form = DatasetForm(request.POST or None, tenant=request.tenant)
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.dataset_create(tenant=request.tenant, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Dataset “{dataset.name}” created.")
            return redirect("catalog:dataset_detail", tenant_slug=request.tenant.slug, pk=dataset.pk)
    return render(request, "catalog/dataset_form.html", {"form": form, "dataset": None})


@tenant_view(permissions.DATASET_MANAGE)
def dataset_update(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = found_or_404(
        selectors.dataset_get(
            tenant=request.tenant, subject=request.membership, pk=pk, action=permissions.DATASET_MANAGE
        )
    )
    form = DatasetForm(request.POST or None, tenant=request.tenant, initial=DatasetForm.initial_for(dataset))
    if request.method == "POST" and form.is_valid():
        try:
            dataset = services.dataset_update(dataset=dataset, data=form.cleaned_data, actor=request.user)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Dataset “{dataset.name}” saved.")
            return redirect("catalog:dataset_detail", tenant_slug=request.tenant.slug, pk=dataset.pk)
    return render(request, "catalog/dataset_form.html", {"form": form, "dataset": dataset})


@tenant_view(permissions.DATASET_MANAGE)
def dataset_delete(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = found_or_404(
        selectors.dataset_get(
            tenant=request.tenant, subject=request.membership, pk=pk, action=permissions.DATASET_MANAGE
        )
    )
    if request.method == "POST":
        services.dataset_delete(dataset=dataset, actor=request.user)
        messages.success(request, f"Dataset “{dataset.name}” deleted.")
        return redirect("catalog:dataset_list", tenant_slug=request.tenant.slug)
    return render(request, "catalog/confirm_delete.html", {"object": dataset, "kind": "dataset"})


# Tools ----------------------------------------------------------------------------------------------------------


@tenant_view(permissions.TOOL_EXECUTE, scope="any_object")
def tool_list(request: HttpRequest) -> HttpResponse:
    filters = ToolFilterForm(request.GET)
    qs = selectors.tool_list(tenant=request.tenant, subject=request.membership, **filters.filters())
    context = {
        "filters": filters,
        "page": _page(request, qs),
        "can_manage": request.can(permissions.TOOL_MANAGE),
    }
    return render_page(request, "catalog/tool_list.html", context)


@tenant_view(permissions.TOOL_EXECUTE, scope="any_object")
def tool_detail(request: HttpRequest, pk: int) -> HttpResponse:
    tool = found_or_404(selectors.tool_get(tenant=request.tenant, subject=request.membership, pk=pk))
    schema_text = json.dumps(tool.args_schema, indent=2, ensure_ascii=False)
    context = {
        "tool": tool,
        "schema_text": schema_text,
        "can_manage": request.can(permissions.TOOL_MANAGE),
    }
    return render(request, "catalog/tool_detail.html", context)


@tenant_view(permissions.TOOL_MANAGE)
def tool_create(request: HttpRequest) -> HttpResponse:
    form = ToolForm(request.POST or None, initial=ToolForm.initial_for(None))
    if request.method == "POST" and form.is_valid():
        try:
            tool = services.tool_create(tenant=request.tenant, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Tool “{tool.name}” registered.")
            return redirect("catalog:tool_detail", tenant_slug=request.tenant.slug, pk=tool.pk)
    return render(request, "catalog/tool_form.html", {"form": form, "tool": None})


@tenant_view(permissions.TOOL_MANAGE)
def tool_update(request: HttpRequest, pk: int) -> HttpResponse:
    tool = found_or_404(
        selectors.tool_get(tenant=request.tenant, subject=request.membership, pk=pk, action=permissions.TOOL_MANAGE)
    )
    form = ToolForm(request.POST or None, initial=ToolForm.initial_for(tool))
    if request.method == "POST" and form.is_valid():
        try:
            tool = services.tool_update(tool=tool, data=form.cleaned_data, actor=request.user)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Tool “{tool.name}” saved.")
            return redirect("catalog:tool_detail", tenant_slug=request.tenant.slug, pk=tool.pk)
    return render(request, "catalog/tool_form.html", {"form": form, "tool": tool})


@tenant_view(permissions.TOOL_MANAGE)
def tool_delete(request: HttpRequest, pk: int) -> HttpResponse:
    tool = found_or_404(
        selectors.tool_get(tenant=request.tenant, subject=request.membership, pk=pk, action=permissions.TOOL_MANAGE)
    )
    if request.method == "POST":
        services.tool_delete(tool=tool, actor=request.user)
        messages.success(request, f"Tool “{tool.name}” deleted.")
        return redirect("catalog:tool_list", tenant_slug=request.tenant.slug)
    return render(request, "catalog/confirm_delete.html", {"object": tool, "kind": "tool"})


# Models ---------------------------------------------------------------------------------------------------------


@tenant_view(permissions.MODEL_USE)
def model_list(request: HttpRequest) -> HttpResponse:
    filters = AIModelFilterForm(request.GET)
    qs = selectors.model_list(tenant=request.tenant, subject=request.membership, **filters.filters())
    context = {
        "filters": filters,
        "page": _page(request, qs),
        "can_manage": request.can(permissions.MODEL_MANAGE),
    }
    return render_page(request, "catalog/model_list.html", context)


@tenant_view(permissions.MODEL_MANAGE)
def model_create(request: HttpRequest) -> HttpResponse:
    form = AIModelForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            model = services.model_create(tenant=request.tenant, actor=request.user, **form.cleaned_data)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Model “{model}” registered.")
            return redirect("catalog:model_list", tenant_slug=request.tenant.slug)
    return render(request, "catalog/model_form.html", {"form": form, "model": None})


def _managed_model(request: HttpRequest, pk: int) -> Any:
    return found_or_404(
        selectors.model_get(tenant=request.tenant, subject=request.membership, pk=pk, action=permissions.MODEL_MANAGE)
    )


@tenant_view(permissions.MODEL_MANAGE)
def model_update(request: HttpRequest, pk: int) -> HttpResponse:
    model = _managed_model(request, pk)
    form = AIModelForm(request.POST or None, initial=AIModelForm.initial_for(model))
    if request.method == "POST" and form.is_valid():
        try:
            model = services.model_update(model=model, data=form.cleaned_data, actor=request.user)
        except ValidationError as exc:
            apply_service_errors(form, exc)
        else:
            messages.success(request, f"Model “{model}” saved.")
            return redirect("catalog:model_list", tenant_slug=request.tenant.slug)
    return render(request, "catalog/model_form.html", {"form": form, "model": model})


def _set_enabled(request: HttpRequest, pk: int, *, enabled: bool) -> HttpResponse:
    # Look the id up before checking the method: a foreign id is 404 whatever the method.
    model = _managed_model(request, pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    model = services.model_update(model=model, data={"enabled": enabled}, actor=request.user)
    messages.success(request, f"Model “{model}” {'enabled' if enabled else 'disabled'}.")
    return redirect("catalog:model_list", tenant_slug=request.tenant.slug)


@tenant_view(permissions.MODEL_MANAGE)
def model_enable(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_enabled(request, pk, enabled=True)


@tenant_view(permissions.MODEL_MANAGE)
def model_disable(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_enabled(request, pk, enabled=False)
