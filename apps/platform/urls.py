from django.urls import path

from apps.platform import views

app_name = "platform"
urlpatterns = [
    path("", views.tenant_list, name="tenant_list"),
]
