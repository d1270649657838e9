"""API-client console pages, mounted under /t/<tenant>/settings/api-clients/."""

from django.urls import path

from apps.keys import views

app_name = "keys"
urlpatterns = [
    path("", views.client_list, name="client_list"),
    path("new/", views.client_create, name="client_create"),
    path("token-policy/", views.token_policy, name="token_policy"),
    path("<int:pk>/", views.client_detail, name="client_detail"),
    path("<int:pk>/activity/", views.client_activity, name="client_activity"),
    path("<int:pk>/rate-limit/", views.client_rate_limit, name="client_rate_limit"),
    path("<int:pk>/rotate/", views.client_rotate, name="client_rotate"),
    path("<int:pk>/disable/", views.client_disable, name="client_disable"),
    path("<int:pk>/enable/", views.client_enable, name="client_enable"),
    path("<int:pk>/secrets/<int:secret_id>/revoke/", views.secret_revoke, name="secret_revoke"),
]
