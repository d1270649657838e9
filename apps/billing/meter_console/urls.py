"""Usage and budget pages, mounted under /t/<tenant>/billing/ next to the billing console."""

from __future__ import annotations

from django.urls import path

from apps.billing.meter_console import views

app_name = "billing_usage"
urlpatterns = [
    path("usage/", views.usage, name="usage"),
    path("budgets/", views.budget_list, name="budget_list"),
    path("budgets/new/", views.budget_create, name="budget_create"),
    path("budgets/<int:pk>/", views.budget_edit, name="budget_edit"),
    path("budgets/<int:pk>/delete/", views.budget_delete, name="budget_delete"),
]
