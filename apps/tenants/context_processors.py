"""Template context for the console layout: tenant switcher and navigation.

A face (it sits above ``tenants`` and ``access``), so it lives here and not in
``core``: the layout is the tenant console's, and the nav asks ``access`` which
areas the member may open.
"""

from __future__ import annotations

import math
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.functional import SimpleLazyObject

from apps.access.decisions import Scope
from apps.access.permsets import for_membership
from apps.breakglass.dashboard import waiting_for
from apps.breakglass.selectors import active_for
from apps.core import context
from apps.tenants.selectors import tenants_for_user

# (section, label, permission that opens the area, its scope as the page's ``tenant_view`` declares it,
# URL name), in the order the nav shows them; the sidebar heads each section once.
ACCESS = "People and access"
NAV_ITEMS: tuple[tuple[str, str, str, Scope, str], ...] = (
    ("", "Dashboard", "tenant.view", "tenant", "tenants:dashboard"),
    (ACCESS, "Members", "tenant.view", "tenant", "tenants:members"),
    (ACCESS, "Roles", "role.manage", "tenant", "access:role_list"),
    (ACCESS, "Grants", "role.manage", "tenant", "access:grants"),
    (ACCESS, "Explain access", "role.manage", "tenant", "access:explain"),
    (ACCESS, "Denied checks", "audit.read", "tenant", "access:denied"),
    ("AI catalog", "Datasets", "dataset.read", "any_object", "catalog:dataset_list"),
    ("AI catalog", "Tools", "tool.execute", "any_object", "catalog:tool_list"),
    ("AI catalog", "Models", "model.use", "tenant", "catalog:model_list"),
    ("AI catalog", "Try a tool call", "tool.execute", "tenant", "guardrails:try"),
    ("Security", "SSO", "sso.manage", "tenant", "sso_settings:list"),
    ("Security", "API clients", "apiclient.manage", "tenant", "keys:client_list"),
    ("Security", "Credentials", "key.manage", "tenant", "credentials:list"),
    ("Security", "Audit log", "audit.read", "tenant", "audit:tenant_list"),
    ("Security", "Alerts", "audit.read", "tenant", "alerts:alert_list"),
    ("Security", "Fraud cases", "apiclient.manage", "tenant", "alerts:case_list"),
    ("Security", "Runbooks", "audit.read", "tenant", "runbook:list"),
    ("Billing", "Billing", "billing.view", "tenant", "billing_console:overview"),
    ("Billing", "Usage", "billing.view", "tenant", "billing_usage:usage"),
    ("Billing", "Budgets", "billing.view", "tenant", "billing_usage:budget_list"),
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
    items: list[dict[str, Any]] = [
        {"section": section, "label": label, "url_name": url_name}
        for section, label, permission, scope, url_name in NAV_ITEMS
        if ask(permission, for_reading=True, scope=scope)
    ]
    breakglass = _breakglass_item(request, ask)
    if breakglass is not None:  # last of its section
        after = [i for i, item in enumerate(items) if item["section"] == ACCESS]
        items.insert(after[-1] + 1 if after else len(items), breakglass)
    return items


def _breakglass_item(request: HttpRequest, ask: Any) -> dict[str, Any] | None:
    """ "Break-glass", for requesters and approvers, with the count of requests waiting for this approver.

    The entry opens the request page for a requester and the approvals page for an approver who
    may not request. Only an approver pays for the badge, and only one COUNT query
    (``breakglass.dashboard.waiting_for``, shared with the dashboard card); everyone else adds no query.
    """
    may_request = ask("breakglass.request", for_reading=True)
    may_approve = ask("breakglass.approve", for_reading=True)
    if not (may_request or may_approve):
        return None
    waiting = waiting_for(request) if may_approve else 0  # type: ignore[arg-type]
    return {
        "section": ACCESS,
        "label": "Break-glass",
        "url_name": "breakglass:index" if may_request else "breakglass:approvals",
        "badge": waiting,
        "badge_label": f"{waiting} request{'s' if waiting != 1 else ''} waiting for your approval",
    }


def console(request: HttpRequest) -> dict[str, Any]:
    return {
        "current_tenant": getattr(request, "tenant", None),
        "current_membership": getattr(request, "membership", None),
        "my_tenants": SimpleLazyObject(lambda: list(tenants_for_user(user=request.user))),
        "nav_items": SimpleLazyObject(lambda: _nav(request)),
        "elevation_banner": SimpleLazyObject(lambda: _elevation_banner(request)),
        # The id the request context bound (also sent as X-Request-ID), for the footer and error pages.
        "request_id": context.current().request_id,
    }


def _elevation_banner(request: HttpRequest) -> list[dict[str, Any]]:
    """The current person's break-glass elevations in force, for the banner on every page.

    The member's permission set (memoised by the entry check) knows whether any time-boxed
    binding is in it (``ends_at``); only then is there one query for the elevations themselves,
    so nobody without an elevation pays anything.
    """
    membership = getattr(request, "membership", None)
    if membership is None or getattr(request, "can", None) is None:
        return []
    if for_membership(membership).ends_at is None:
        return []
    now = timezone.now()
    return [
        {
            "elevation": elevation,
            # Rounded up: "1 min left" until the very end, never "0 min left" while it still holds.
            "minutes_left": max(1, math.ceil((elevation.expires_at - now).total_seconds() / 60)),
        }
        for elevation in active_for(tenant=request.tenant, membership=membership)  # type: ignore[attr-defined]
    ]
