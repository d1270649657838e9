"""URL map: /t/<tenant>/… tenant console, /platform/… staff, /accounts/… sign-in."""

from django.conf import settings
from django.contrib import admin
from django.urls import include, path

from apps.core import views as core_views
from apps.tenants import views as tenant_views
from config import admin_site

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("", include("apps.keys.api_urls")),  # OAuth token endpoint, JWKS, server metadata
    path("api/v1/", include("apps.api.urls")),  # the runtime API (after the token endpoint above)
    path("", tenant_views.home, name="home"),
    path("accounts/", include("apps.accounts.urls")),  # before allauth: our session sign-out
    path("accounts/", include("allauth.urls")),
    path("sso/", include("apps.sso.urls")),
    path("invitations/", include("apps.tenants.invitation_urls")),
    path("platform/", include("apps.platform.urls")),
    path("billing/webhooks/", include("apps.billing.urls")),  # payment providers' signed events
    path("breakglass/webhooks/", include("apps.breakglass.webhook_urls")),  # signed incident events
    path("t/<str:tenant_slug>/", include("apps.tenants.urls")),
    path("t/<str:tenant_slug>/audit/", include("apps.audit.urls")),
    path("t/<str:tenant_slug>/access/", include("apps.access.urls")),
    path("t/<str:tenant_slug>/settings/sso/", include("apps.sso.settings_urls")),
    path("t/<str:tenant_slug>/sso/emergency/", include("apps.sso.emergency_urls")),  # emergency accounts (#11)
    path("t/<str:tenant_slug>/catalog/", include("apps.catalog.urls")),
    path("t/<str:tenant_slug>/settings/api-clients/", include("apps.keys.urls")),
    path("t/<str:tenant_slug>/keys/credentials/", include("apps.keys.credentials.urls")),  # provider credentials
    path("t/<str:tenant_slug>/guardrails/", include("apps.guardrails.urls")),
    path("t/<str:tenant_slug>/break-glass/", include("apps.breakglass.urls")),
    path("t/<str:tenant_slug>/billing/", include("apps.billing.console.urls")),
    path("t/<str:tenant_slug>/billing/", include("apps.billing.meter_console.urls")),  # usage and budgets
    path("t/<str:tenant_slug>/api/", include("apps.api.console_urls")),
    path("t/<str:tenant_slug>/runbooks/", include("apps.runbook.urls")),
    path("t/<str:tenant_slug>/alerts/", include("apps.alerts.urls")),  # alerts, webhooks, fraud queue
]

# The Django admin is for superusers only, not for every platform staff member, signed
# in through allauth/SSO under the sign-in policy (its own password form is replaced),
# and is mounted only when ADMIN_ENABLED is set.
admin_site.install(admin.site)
if settings.ADMIN_ENABLED:
    urlpatterns.append(path("django-admin/", admin.site.urls))

handler400 = "apps.core.errors.bad_request"
handler403 = "apps.core.errors.permission_denied"
handler404 = "apps.core.errors.page_not_found"
handler500 = "apps.core.errors.server_error"
