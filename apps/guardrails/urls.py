from django.urls import path

from apps.guardrails import views

app_name = "guardrails"
urlpatterns = [
    path("try/", views.try_tool_call, name="try"),
]
