"""Runbook and retention pages, mounted under /t/<tenant_slug>/runbooks/. Object URLs take a runbook id."""

from django.urls import path

from apps.runbook import views

app_name = "runbook"
urlpatterns = [
    path("", views.runbook_list, name="list"),
    path("retention/", views.retention_view, name="retention"),
    path("retention/edit/", views.retention_edit, name="retention_edit"),
    path("<int:runbook_id>/", views.runbook_detail, name="detail"),
    path("<int:runbook_id>/items/<int:item_id>/mark/", views.item_mark, name="item_mark"),
    path("<int:runbook_id>/refresh/", views.runbook_refresh, name="refresh"),
    path("<int:runbook_id>/sign-off/", views.runbook_sign_off, name="sign_off"),
    path("<int:runbook_id>/print/", views.runbook_print, name="print"),
    path("<int:runbook_id>/export.json", views.runbook_export_json, name="export_json"),
]
