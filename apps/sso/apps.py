from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "apps.sso"
    label = "sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        # The sign-in policy's hooks on Django's and allauth's authentication signals.
        from apps.sso import signals  # noqa: F401
