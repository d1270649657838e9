from django.urls import path  # noqa: F401

app_name = "sso_settings"
urlpatterns: list = []
