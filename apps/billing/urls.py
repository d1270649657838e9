"""Payment-provider webhooks, mounted under /billing/webhooks/."""

from __future__ import annotations

from django.urls import path

from apps.billing import views

app_name = "billing"
urlpatterns = [
    path("stripe/", views.stripe_webhook, name="stripe_webhook"),
    path("adyen/", views.adyen_webhook, name="adyen_webhook"),
]
