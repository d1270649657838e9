"""The project's URLs plus the platform audit pages, for tests.

apps/platform/urls.py is wired by the platform owner; until then these tests
mount the two views at the paths agreed for them.
"""

from django.urls import path

from apps.platform import audit_views
from config.urls import handler400, handler403, handler404, handler500
from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    path("platform/audit/", audit_views.platform_audit_list),
    path("platform/audit/export/", audit_views.platform_audit_export),
    *project_urlpatterns,
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
