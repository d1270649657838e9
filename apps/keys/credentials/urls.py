"""Credential pages, mounted under /t/<tenant_slug>/keys/credentials/ (every view needs ``key.manage``)."""

from __future__ import annotations

from django.urls import path

from apps.keys.credentials import views

app_name = "credentials"
urlpatterns = [
    path("", views.credential_list, name="list"),
    path("new/", views.credential_create, name="create"),
    path("due/", views.credential_due, name="due"),
    path("settings/", views.credential_settings, name="settings"),
    path("<int:pk>/", views.credential_detail, name="detail"),
    path("<int:pk>/edit/", views.credential_edit, name="edit"),
    path("<int:pk>/delete/", views.credential_delete, name="delete"),
    path("<int:pk>/check/", views.credential_check, name="check"),
    path("<int:pk>/rotate/", views.credential_rotate, name="rotate"),
    path("<int:pk>/record-rotation/", views.credential_record, name="record"),
]
