"""Audit console pages."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.access.decorators import tenant_view


@tenant_view("audit.read")
def tenant_audit_list(request: HttpRequest) -> HttpResponse:
    return render(request, "audit/event_list.html", {})
