"""/api/v1/: the runtime API. Every route is an ``api_view`` (or public: the document, the 404)."""

from __future__ import annotations

from django.urls import path, re_path

from apps.api import usage_views, views
from apps.api.docs import openapi_json

app_name = "api"

urlpatterns = [
    path("authorize", views.authorize_one, name="authorize"),
    path("authorize/batch", views.authorize_batch, name="authorize_batch"),
    path("tool-calls/check", views.tool_call_check, name="tool_call_check"),
    path("me", views.me, name="me"),
    path("usage", usage_views.usage_report, name="usage"),
    path("guard", usage_views.guard, name="guard"),
    path("budget/reservations", usage_views.reservation_create, name="reservation_create"),
    path("budget/reservations/<str:reservation_id>/settle", usage_views.reservation_settle, name="reservation_settle"),
    path(
        "budget/reservations/<str:reservation_id>/release", usage_views.reservation_release, name="reservation_release"
    ),
    path("openapi.json", openapi_json, name="openapi"),
    # Last: any other path under /api/v1/ is a problem document, not the console's HTML page.
    re_path(r"^.*$", views.not_found),
]
