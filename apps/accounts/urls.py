"""Bastion's own account URLs, mounted at /accounts/ next to allauth's (include before allauth's)."""

from __future__ import annotations

from django.urls import path

from apps.accounts import views

app_name = "accounts"
urlpatterns = [
    path("sessions/<int:session_id>/end/", views.session_end, name="session_end"),
]
