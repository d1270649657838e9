"""The project's URL map with Bastion's own /accounts/ URLs mounted before allauth's.

Used by tests (``@pytest.mark.urls("tests.accounts.urls")``) until config/urls.py
includes ``apps.accounts.urls``; afterwards the extra include is a harmless duplicate.
"""

from django.urls import include, path

from config.urls import handler400, handler403, handler404, handler500  # noqa: F401
from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [path("accounts/", include("apps.accounts.urls")), *project_urlpatterns]
