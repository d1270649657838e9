from django.urls import path

from apps.tenants import views

app_name = "invitations"
urlpatterns = [
    path("<str:token>/", views.invitation_accept, name="accept"),
]
