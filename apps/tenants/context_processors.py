"""Template context for the console layout: tenant switcher and navigation.

A face (it sits above ``tenants`` and ``access``), so it lives here and not in
``core``: the layout is the tenant console's, and the nav asks ``access`` which
areas the member may open.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.access.services import authorize
from apps.tenants.selectors import tenants_for_user

# (label, permission that opens the area, URL name), in the order the nav shows them.
NAV_ITEMS = (
    ("Dashboard", "tenant.view", "tenants:dashboard"),
    ("Members", "tenant.view", "tenants:members"),
    ("Datasets", "dataset.read", "catalog:dataset_list"),
    ("Tools", "tool.execute", "catalog:tool_list"),
    ("Models", "model.use", "catalog:model_list"),
    ("Try a tool call", "tool.execute", "guardrails:try"),
    ("SSO", "sso.manage", "sso_settings:list"),
    ("Roles", "role.manage", "access:role_list"),
    ("Grants", "role.manage", "access:grants"),
    ("Explain access", "role.manage", "access:explain"),
    ("Denied checks", "audit.read", "access:denied"),
    ("Audit log", "audit.read", "audit:tenant_list"),
)


def _nav(request: HttpRequest) -> list[dict[str, str]]:
    """Only areas that exist and that the member may open."""
    tenant = getattr(request, "tenant", None)
    membership = getattr(request, "membership", None)
    if tenant is None:
        return []
    return [
        {"label": label, "url_name": url_name}
        for label, permission, url_name in NAV_ITEMS
        if authorize(membership, permission, tenant=tenant, log_denial=False, for_reading=True)
    ]


def console(request: HttpRequest) -> dict[str, Any]:
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "my_tenants": SimpleLazyObject(lambda: list(tenants_for_user(user=request.user))),
        "nav_items": SimpleLazyObject(lambda: _nav(request)),
    }
