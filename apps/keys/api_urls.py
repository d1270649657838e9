"""Public OAuth routes, mounted at the site root by config/urls.py (before the runtime API's own routes)."""

from django.urls import path

from apps.keys import api_views

urlpatterns = [
    path("api/v1/oauth/token", api_views.token, name="oauth_token"),
    path(".well-known/jwks.json", api_views.jwks, name="jwks"),
    path(".well-known/oauth-authorization-server", api_views.server_metadata, name="oauth_metadata"),
]
