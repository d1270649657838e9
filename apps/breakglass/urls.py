"""Break-glass console pages, mounted under /t/<tenant>/break-glass/."""

from django.urls import path, re_path

from apps.breakglass import views
from apps.breakglass.views import review

app_name = "breakglass"
urlpatterns = [
    path("", views.index, name="index"),
    path("policies/<int:policy_id>/request/", views.request_create, name="request_create"),
    path("policies/", views.policy_list, name="policy_list"),
    path("policies/new/", views.policy_create, name="policy_create"),
    path("policies/<int:policy_id>/", views.policy_edit, name="policy_edit"),
    path("policies/<int:policy_id>/pause/", views.policy_pause, name="policy_pause"),
    path("approvals/", views.approvals, name="approvals"),
    path("<int:pk>/approve/", views.approve, name="approve"),
    path("<int:pk>/deny/", views.deny, name="deny"),
    path("<int:pk>/end/", views.end, name="end"),
    path("elevations/", review.elevation_list, name="elevation_list"),
    path("elevations/<int:pk>/", review.elevation_detail, name="elevation_detail"),
    re_path(
        r"^elevations/(?P<pk>[0-9]+)/events\.(?P<fmt>csv|jsonl)$",
        review.elevation_export,
        name="elevation_export",
    ),
    path("incidents/", review.incident_list, name="incident_list"),
    path("incidents/close/", review.incident_close, name="incident_close"),
    path("incidents/webhook/", review.incident_webhook, name="incident_webhook"),
]
