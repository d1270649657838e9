"""Tenant SSO settings, mounted under /t/<tenant_slug>/settings/sso/ (every view needs sso.manage)."""

from __future__ import annotations

from django.urls import path

from apps.sso import views

app_name = "sso_settings"
urlpatterns = [
    path("", views.settings_list, name="list"),
    path("connections/new/saml/", views.connection_create, {"kind": "saml"}, name="saml_create"),
    path("connections/new/oidc/", views.connection_create, {"kind": "oidc"}, name="oidc_create"),
    path("connections/<int:connection_id>/", views.connection_detail, name="detail"),
    path("connections/<int:connection_id>/edit/", views.connection_edit, name="edit"),
    path("connections/<int:connection_id>/test/", views.connection_test, name="test"),
    path("connections/<int:connection_id>/test/result/", views.test_result, name="test_result"),
    path("connections/<int:connection_id>/enable/", views.connection_enable, name="enable"),
    path("connections/<int:connection_id>/disable/", views.connection_disable, name="disable"),
    path("connections/<int:connection_id>/primary/", views.connection_primary, name="primary"),
    path("connections/<int:connection_id>/route/", views.connection_route, name="route"),
    path("connections/<int:connection_id>/refresh/", views.connection_refresh, name="refresh"),
    path("connections/<int:connection_id>/delete/", views.connection_delete, name="delete"),
    path("domains/", views.domains, name="domains"),
    path("domains/<int:domain_id>/release/", views.domain_release, name="domain_release"),
    path("domains/<int:domain_id>/check/", views.domain_check, name="domain_check"),
    path("policy/", views.policy, name="policy"),
    path("groups/", views.groups, name="groups"),
]
