"""Platform workflows that span apps: creating a tenant means tenants + access."""

from __future__ import annotations

from django.db import transaction

from apps.access.services import builtin_roles_seed
from apps.accounts.models import User
from apps.tenants.models import Tenant
from apps.tenants.services import tenant_create


@transaction.atomic
def tenant_provision(*, slug: str, name: str, owner_email: str, actor: User | None = None) -> Tenant:
    """Create a tenant, seed its built-in roles and invite its first owner, all or nothing.

    Raises apps.tenants.services.TenantError on a taken, reserved or malformed slug.
    """
    tenant = tenant_create(slug=slug, name=name, owner_email=owner_email, actor=actor)
    builtin_roles_seed(tenant=tenant)
    return tenant
