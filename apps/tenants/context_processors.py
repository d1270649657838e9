"""Template context for the console layout: tenant switcher and navigation.

A face (it sits above ``tenants`` and ``access``), so it lives here and not in
``core``: the layout is the tenant console's, and the nav asks ``access`` which
areas the member may open.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.access.decisions import Scope
from apps.tenants.selectors import tenants_for_user

# (label, permission that opens the area, its scope as the page's ``tenant_view`` declares it, URL name),
# in the order the nav shows them.
NAV_ITEMS: tuple[tuple[str, str, Scope, str], ...] = (
    ("Dashboard", "tenant.view", "tenant", "tenants:dashboard"),
    ("Members", "tenant.view", "tenant", "tenants:members"),
    ("Datasets", "dataset.read", "any_object", "catalog:dataset_list"),
    ("Tools", "tool.execute", "any_object", "catalog:tool_list"),
    ("Models", "model.use", "tenant", "catalog:model_list"),
    ("Try a tool call", "tool.execute", "tenant", "guardrails:try"),
    ("SSO", "sso.manage", "tenant", "sso_settings:list"),
    ("API clients", "apiclient.manage", "tenant", "keys:client_list"),
    ("Roles", "role.manage", "tenant", "access:role_list"),
    ("Grants", "role.manage", "tenant", "access:grants"),
    ("Explain access", "role.manage", "tenant", "access:explain"),
    ("Denied checks", "audit.read", "tenant", "access:denied"),
    ("Audit log", "audit.read", "tenant", "audit:tenant_list"),
)


def _nav(request: HttpRequest) -> list[dict[str, str]]:
    """Only areas that exist and that the member may open.

    ``request.can`` (set by ``tenant_view``) reads the membership's permission
    set, memoised for the request (the entry check loaded it): no query and
    nothing logged, however many entries there are. Outside a tenant page
    there is no ``request.can`` and no nav.
    """
    ask = getattr(request, "can", None)
    if ask is None:
        return []
    return [
        {"label": label, "url_name": url_name}
        for label, permission, scope, url_name in NAV_ITEMS
        if ask(permission, for_reading=True, scope=scope)
    ]


def console(request: HttpRequest) -> dict[str, Any]:
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "my_tenants": SimpleLazyObject(lambda: list(tenants_for_user(user=request.user))),
        "nav_items": SimpleLazyObject(lambda: _nav(request)),
    }
