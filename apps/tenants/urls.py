"""Tenant console URLs, mounted under /t/<tenant_slug>/. Object URLs take a membership id."""

from django.urls import path

from apps.tenants import views

app_name = "tenants"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("members/", views.member_list, name="members"),
    path("members/invite/", views.member_invite, name="member_invite"),
    path("members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("members/<int:membership_id>/disable/", views.member_disable, name="member_disable"),
    path("members/<int:membership_id>/enable/", views.member_enable, name="member_enable"),
    path("members/<int:membership_id>/resend/", views.member_resend, name="member_resend"),
    path("members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
]
