"""Emergency accounts of a tenant, mounted under /t/<tenant_slug>/sso/emergency/ (every view needs sso.manage).

Changes are for Owners only (the service decides). Accounts and sign-ins are
named by their database id, always looked up within the URL's tenant.
"""

from __future__ import annotations

from django.urls import path

from apps.sso.views import emergency as views

app_name = "sso_emergency"
urlpatterns = [
    path("", views.emergency_list, name="list"),
    path("new/", views.emergency_create, name="create"),
    path("<int:account_id>/rotate/", views.emergency_rotate, name="rotate"),
    path("<int:account_id>/disable/", views.emergency_set_disabled, {"disabled": True}, name="disable"),
    path("<int:account_id>/enable/", views.emergency_set_disabled, {"disabled": False}, name="enable"),
    path("<int:account_id>/delete/", views.emergency_delete, name="delete"),
    path("sign-ins/<int:sign_in_id>/acknowledge/", views.emergency_acknowledge, name="acknowledge"),
]
