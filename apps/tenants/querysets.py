"""Chainable, side-effect-free filters for tenants and tenant-owned rows."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from apps.tenants.models import Tenant


class TenantOwnedQuerySet(models.QuerySet):
    """Every read of a tenant-owned model starts with ``for_tenant``."""

    def for_tenant(self, tenant: Tenant | int) -> TenantOwnedQuerySet:
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        return self.filter(tenant_id=tenant_id)


class TenantQuerySet(models.QuerySet):
    def active(self) -> TenantQuerySet:
        return self.filter(status="active")

    def for_user(self, user: Any) -> TenantQuerySet:
        """Tenants where ``user`` holds an active membership."""
        return self.filter(memberships__user=user, memberships__status="active")


class MembershipQuerySet(TenantOwnedQuerySet):
    def active(self) -> MembershipQuerySet:
        return self.filter(status="active")
