"""Chainable, side-effect-free filters for tenants and tenant-owned rows."""

from __future__ import annotations

from typing import Any

from django.db import models


class TenantScopedQuerySet(models.QuerySet):
    """Every read of a tenant-scoped model starts with ``for_tenant``.

    ``for_tenant(None)`` means the platform's own rows (a nullable ``tenant``,
    see ``OptionalTenantOwned``); for a model whose tenant is required it
    matches nothing. The tenant is a model instance or its id; typed loosely
    (``models.Model``) because ``apps.tenants.models`` imports this module.
    """

    def for_tenant(self, tenant: models.Model | int | None) -> TenantScopedQuerySet:
        if tenant is None:
            return self.filter(tenant__isnull=True)
        tenant_id = tenant if isinstance(tenant, int) else tenant.pk
        return self.filter(tenant_id=tenant_id)


# The name the tenant-owned querysets of other apps subclass (a required tenant).
TenantOwnedQuerySet = TenantScopedQuerySet


class TenantQuerySet(models.QuerySet):
    def active(self) -> TenantQuerySet:
        return self.filter(status="active")

    def for_user(self, user: Any) -> TenantQuerySet:
        """Tenants where ``user`` holds an active membership."""
        return self.filter(memberships__user=user, memberships__status="active")


class MembershipQuerySet(TenantOwnedQuerySet):
    def active(self) -> MembershipQuerySet:
        return self.filter(status="active")
