"""Access console URLs, mounted under /t/<tenant_slug>/access/. Object URLs take a role id (and binding id)."""

from __future__ import annotations

from django.urls import path

from apps.access import views

app_name = "access"
urlpatterns = [
    path("roles/", views.role_list, name="role_list"),
    path("roles/new/", views.role_create, name="role_create"),
    path("roles/<int:role_id>/", views.role_detail, name="role_detail"),
    path("roles/<int:role_id>/edit/", views.role_edit, name="role_edit"),
    path("roles/<int:role_id>/delete/", views.role_delete, name="role_delete"),
    path("roles/<int:role_id>/bindings/add/", views.binding_add, name="binding_add"),
    path(
        "roles/<int:role_id>/bindings/<int:binding_id>/remove/",
        views.binding_remove,
        name="binding_remove",
    ),
    path("grants/", views.grants, name="grants"),
    path("grants/add/", views.grant_add, name="grant_add"),
    path("grants/revoke/", views.grant_revoke, name="grant_revoke"),
    path("explain/", views.explain, name="explain"),
    path("denied/", views.denied, name="denied"),
]
