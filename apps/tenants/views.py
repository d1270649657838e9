"""Tenant console pages (thin: select, render)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.access.decorators import public_view, tenant_view
from apps.tenants import selectors


@tenant_view("tenant.view")
def dashboard(request: HttpRequest) -> HttpResponse:
    return render(request, "tenants/dashboard.html", {})


@tenant_view("tenant.view")
def member_list(request: HttpRequest) -> HttpResponse:
    members = selectors.member_list(tenant=request.tenant)  # type: ignore[attr-defined]
    return render(request, "tenants/member_list.html", {"members": members})


@public_view
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    raise NotImplementedError
