from django.apps import AppConfig


class BreakglassConfig(AppConfig):
    name = "apps.breakglass"
    label = "breakglass"
