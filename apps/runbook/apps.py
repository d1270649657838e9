from django.apps import AppConfig


class RunbookConfig(AppConfig):
    name = "apps.runbook"
    label = "runbook"
    verbose_name = "Quarterly runbook and retention"
