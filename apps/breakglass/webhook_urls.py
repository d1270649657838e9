"""The incident webhook, mounted at /breakglass/webhooks/ (outside any tenant's console)."""

from django.urls import path

from apps.breakglass.views import webhooks

app_name = "breakglass_webhooks"
urlpatterns = [
    path("incidents/<str:token>/", webhooks.incident_webhook, name="incident"),
]
