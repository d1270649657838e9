from django.urls import path

from apps.catalog import views

app_name = "catalog"
urlpatterns = [
    path("datasets/", views.dataset_list, name="dataset_list"),
    path("datasets/new/", views.dataset_create, name="dataset_create"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset_detail"),
    path("datasets/<int:pk>/edit/", views.dataset_update, name="dataset_update"),
    path("datasets/<int:pk>/delete/", views.dataset_delete, name="dataset_delete"),
    path("tools/", views.tool_list, name="tool_list"),
    path("tools/new/", views.tool_create, name="tool_create"),
    path("tools/<int:pk>/", views.tool_detail, name="tool_detail"),
    path("tools/<int:pk>/edit/", views.tool_update, name="tool_update"),
    path("tools/<int:pk>/delete/", views.tool_delete, name="tool_delete"),
    path("models/", views.model_list, name="model_list"),
    path("models/new/", views.model_create, name="model_create"),
    path("models/<int:pk>/edit/", views.model_update, name="model_update"),
    path("models/<int:pk>/enable/", views.model_enable, name="model_enable"),
    path("models/<int:pk>/disable/", views.model_disable, name="model_disable"),
]
