from django.apps import AppConfig


class BreakglassConfig(AppConfig):
    name = "apps.breakglass"
    label = "breakglass"

    def ready(self) -> None:
        # A member removed or disabled keeps no elevation (tenants/access cannot call break-glass).
        from apps.breakglass import signals  # noqa: F401
