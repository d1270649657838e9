"""Chainable, side-effect-free filters for catalog rows; every read starts with ``for_tenant``."""

from __future__ import annotations

from apps.tenants.querysets import TenantOwnedQuerySet


class DatasetQuerySet(TenantOwnedQuerySet):
    def classified(self, classification: str) -> DatasetQuerySet:
        return self.filter(classification=classification)


class ToolQuerySet(TenantOwnedQuerySet):
    def at_risk(self, risk_level: str) -> ToolQuerySet:
        return self.filter(risk_level=risk_level)

    def allowlisted(self) -> ToolQuerySet:
        return self.filter(allowlisted=True)


class AIModelQuerySet(TenantOwnedQuerySet):
    def enabled(self) -> AIModelQuerySet:
        return self.filter(enabled=True)
