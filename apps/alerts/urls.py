"""/t/<tenant>/alerts/…: alerts, rules, webhook endpoints, delivery log, and the fraud queue."""

from django.urls import path

from apps.alerts.views import console, fraud

app_name = "alerts"

urlpatterns = [
    path("", console.alert_list, name="alert_list"),
    path("<int:pk>/", console.alert_detail, name="alert_detail"),
    path("<int:pk>/acknowledge/", console.alert_acknowledge, name="alert_acknowledge"),
    path("<int:pk>/resolve/", console.alert_resolve, name="alert_resolve"),
    path("rules/", console.rule_list, name="rule_list"),
    path("rules/new/", console.rule_create, name="rule_create"),
    path("rules/<int:pk>/", console.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/delete/", console.rule_delete, name="rule_delete"),
    path("webhooks/", console.endpoint_list, name="endpoint_list"),
    path("webhooks/new/", console.endpoint_create, name="endpoint_create"),
    path("webhooks/<int:pk>/", console.endpoint_edit, name="endpoint_edit"),
    path("webhooks/<int:pk>/rotate/", console.endpoint_rotate, name="endpoint_rotate"),
    path("webhooks/<int:pk>/delete/", console.endpoint_delete, name="endpoint_delete"),
    path("deliveries/", console.delivery_list, name="delivery_list"),
    path("deliveries/<int:pk>/", console.delivery_detail, name="delivery_detail"),
    path("deliveries/<int:pk>/retry/", console.delivery_retry, name="delivery_retry"),
    path("fraud/", fraud.case_list, name="case_list"),
    path("fraud/settings/", fraud.policy_edit, name="policy_edit"),
    path("fraud/<int:pk>/", fraud.case_detail, name="case_detail"),
    path("fraud/<int:pk>/assign/", fraud.case_assign, name="case_assign"),
    path("fraud/<int:pk>/decide/", fraud.case_decide, name="case_decide"),
]
