"""Restore drills for platform staff, mounted under /platform/runbook/ (names join the platform namespace)."""

from __future__ import annotations

from django.urls import path

from apps.runbook import views

urlpatterns = [
    path("drills/", views.drill_list, name="runbook_drills"),
    path("drills/run/", views.drill_start, name="runbook_drill_start"),
    path("drills/<int:drill_id>/", views.drill_detail, name="runbook_drill"),
]
