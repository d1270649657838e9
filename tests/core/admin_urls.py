"""The production URL map with the Django admin mounted, as it is when ADMIN_ENABLED is set."""

from __future__ import annotations

from django.contrib import admin
from django.urls import path

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401 - same error pages
from config.urls import urlpatterns as base

urlpatterns = [*base, path("django-admin/", admin.site.urls)]
