"""Creating a tenant from the platform area also gives it its built-in roles."""

from __future__ import annotations

import pytest

from apps.access.models import Role
from apps.tenants.selectors import tenant_get

pytestmark = pytest.mark.django_db


def test_created_tenant_has_builtin_roles(cast, client_for) -> None:
    response = client_for(cast.staff).post(
        "/platform/tenants/new/", {"slug": "initech", "name": "Initech", "owner_email": "boss@initech.example"}
    )
    assert response.status_code == 302
    tenant = tenant_get(slug="initech")
    keys = set(Role.objects.for_tenant(tenant).filter(builtin=True).values_list("key", flat=True))
    assert {"owner", "admin", "developer", "analyst", "billing", "auditor", "approver"} <= keys
