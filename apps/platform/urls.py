"""Platform staff URLs, mounted under /platform/."""

from django.urls import include, path

from apps.platform import views

app_name = "platform"
urlpatterns = [
    path("", views.tenant_list, name="tenant_list"),
    path("tenants/new/", views.tenant_create, name="tenant_create"),
    path("tenants/<str:slug>/", views.tenant_detail, name="tenant_detail"),
    path("tenants/<str:slug>/suspend/", views.tenant_suspend, name="tenant_suspend"),
    path("tenants/<str:slug>/reactivate/", views.tenant_reactivate, name="tenant_reactivate"),
    path("audit/", include("apps.audit.platform_urls")),
    path("sso/", include("apps.sso.platform_urls")),
    path("signing-keys/", include("apps.keys.platform_urls")),
    path("billing/", include("apps.billing.platform_urls")),
    path("runbook/", include("apps.runbook.platform_urls")),  # restore drills (#13, item 3)
    path("billing/", include("apps.billing.console.platform_urls")),  # plans and dunning
]
