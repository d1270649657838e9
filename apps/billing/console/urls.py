"""A tenant's billing pages, mounted under /t/<tenant>/billing/."""

from __future__ import annotations

from django.urls import path

from apps.billing.console import views

app_name = "billing_console"
urlpatterns = [
    path("", views.overview, name="overview"),
    path("invoices/", views.invoice_list, name="invoice_list"),
    path("invoices/<int:pk>/", views.invoice_detail, name="invoice_detail"),
    path("plans/<int:plan_id>/checkout/", views.checkout, name="checkout"),
    path("portal/", views.portal, name="portal"),
]
