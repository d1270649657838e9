"""The platform staff's audit log, mounted under /platform/audit/ (platform staff only).

The same page as a tenant's audit log (``apps.audit.urls``), in the platform
scope. No ``app_name``: the names join the platform namespace
(``platform:audit``, ``platform:audit_export``).
"""

from __future__ import annotations

from django.urls import path

from apps.audit import views

urlpatterns = [
    path("", views.platform_audit_list, name="audit"),
    path("export/", views.platform_audit_export, name="audit_export"),
]
