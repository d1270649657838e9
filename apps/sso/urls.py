"""Public SSO URLs, mounted under /sso/: the sign-in flow, SP metadata, discovery, staff domain checks.

Connections are named by their public id (a UUID), never their database id.
"""

from __future__ import annotations

from django.urls import path

from apps.sso import views

app_name = "sso"
urlpatterns = [
    path("discover/", views.discover, name="discover"),
    path("step-up/", views.step_up, name="step_up"),
    path("start/<uuid:public_id>/", views.start, name="start"),
    path("saml/<uuid:public_id>/acs/", views.saml_acs, name="saml_acs"),
    path("saml/<uuid:public_id>/metadata/", views.saml_metadata, name="saml_metadata"),
    path("saml/<uuid:public_id>/sls/", views.saml_sls, name="saml_sls"),
    path("oidc/<uuid:public_id>/callback/", views.oidc_callback, name="oidc_callback"),
    path("staff/domains/", views.staff_domains, name="staff_domains"),
    path("staff/domains/<int:domain_id>/verify/", views.staff_domain_verify, name="staff_domain_verify"),
    path("staff/domains/<int:domain_id>/release/", views.staff_domain_release, name="staff_domain_release"),
]
