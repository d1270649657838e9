"""The API reference page in the tenant console (/t/<tenant>/api/)."""

from __future__ import annotations

from django.urls import path

from apps.api import docs

app_name = "api_console"

urlpatterns = [path("reference/", docs.reference, name="reference")]
