from django.urls import path, re_path

from apps.audit import views

app_name = "audit"
urlpatterns = [
    path("", views.tenant_audit_list, name="tenant_list"),
    re_path(r"^export\.(?P<fmt>csv|jsonl)$", views.tenant_audit_export, name="tenant_export"),
]
