"""Plans and dunning for platform staff, mounted under /platform/billing/ (names join the platform namespace)."""

from __future__ import annotations

from django.urls import path

from apps.billing.console import views

urlpatterns = [
    path("plans/", views.plan_list, name="billing_plan_list"),
    path("plans/new/", views.plan_create, name="billing_plan_create"),
    path("plans/<int:pk>/edit/", views.plan_edit, name="billing_plan_edit"),
    path("dunning/", views.dunning_list, name="billing_dunning"),
    path("dunning/<str:slug>/extend/", views.grace_extend, name="billing_grace_extend"),
]
