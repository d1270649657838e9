"""The platform's own SSO settings, mounted under /platform/sso/ (platform staff only).

The same views as a tenant's SSO settings (``apps.sso.settings_urls``), in
their ``.platform`` variant: connections and sign-in policy with tenant null.
The platform's e-mail domains are claimed and checked (DNS TXT) here; the
staff page under /sso/staff/domains/ lists every claim and holds the
"verify without DNS" override.
"""

from __future__ import annotations

from django.urls import path

from apps.sso import views

app_name = "sso"
urlpatterns = [
    path("", views.settings_list.platform, name="list"),
    path("connections/new/saml/", views.connection_create.platform, {"kind": "saml"}, name="saml_create"),
    path("connections/new/oidc/", views.connection_create.platform, {"kind": "oidc"}, name="oidc_create"),
    path("connections/<int:connection_id>/", views.connection_detail.platform, name="detail"),
    path("connections/<int:connection_id>/edit/", views.connection_edit.platform, name="edit"),
    path("connections/<int:connection_id>/test/", views.connection_test.platform, name="test"),
    path("connections/<int:connection_id>/test/result/", views.test_result.platform, name="test_result"),
    path("connections/<int:connection_id>/enable/", views.connection_enable.platform, name="enable"),
    path("connections/<int:connection_id>/disable/", views.connection_disable.platform, name="disable"),
    path("connections/<int:connection_id>/primary/", views.connection_primary.platform, name="primary"),
    path("connections/<int:connection_id>/route/", views.connection_route.platform, name="route"),
    path("connections/<int:connection_id>/refresh/", views.connection_refresh.platform, name="refresh"),
    path("connections/<int:connection_id>/delete/", views.connection_delete.platform, name="delete"),
    path("domains/", views.domains.platform, name="domains"),
    path("domains/<int:domain_id>/release/", views.domain_release.platform, name="domain_release"),
    path("domains/<int:domain_id>/check/", views.domain_check.platform, name="domain_check"),
    path("policy/", views.policy.platform, name="policy"),
    # Tenants' connections, for staff to switch one off when a tenant locked itself out (#9, item 2).
    path("tenant-connections/", views.staff_tenant_connections, name="staff_connections"),
    path(
        "tenant-connections/<int:connection_id>/disable/",
        views.staff_connection_disable,
        name="staff_connection_disable",
    ),
]
