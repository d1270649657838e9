"""Webhook dead letters for platform staff, mounted under /platform/billing/ (names join the platform namespace)."""

from __future__ import annotations

from django.urls import path

from apps.billing import views

urlpatterns = [
    path("webhooks/", views.dead_letters, name="billing_dead_letters"),
    path("webhooks/<int:pk>/replay/", views.replay, name="billing_replay"),
]
