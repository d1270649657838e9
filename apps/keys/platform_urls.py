"""Signing keys for platform staff, mounted under /platform/signing-keys/ (names join the platform namespace)."""

from __future__ import annotations

from django.urls import path

from apps.keys import views

urlpatterns = [
    path("", views.signing_key_list, name="signing_keys"),
    path("<int:pk>/revoke/", views.signing_key_revoke, name="signing_key_revoke"),
]
