"""Platform staff pages: tenants across the installation."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.access.decorators import platform_view
from apps.tenants import selectors


@platform_view
def tenant_list(request: HttpRequest) -> HttpResponse:
    return render(request, "platform/tenant_list.html", {"tenants": selectors.tenant_list_with_counts()})
