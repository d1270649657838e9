from django.apps import AppConfig


class AccessConfig(AppConfig):
    name = "apps.access"
    label = "access"
    verbose_name = "Access control"

    def ready(self) -> None:
        from apps.access.permsets import tenant_status_changed
        from apps.tenants import events

        # A suspension or reactivation changes what every member and API client may do: new access version.
        events.status_changed.connect(tenant_status_changed, dispatch_uid="access.tenant_status_changed")
