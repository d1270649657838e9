"""The dunning banner: a failed payment shown to billing admins on every page of their tenant.

Lazy, so a page that never renders it costs nothing; outside a tenant page, or for a member
without ``billing.manage``, no query at all (``request.can`` reads the memoised permission
set); for a billing admin the tenant's banner state from the cache (one indexed query to fill it,
``billing_dunning_open``, dropped whenever the tenant's open cases change).
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.billing import dunning


def _banner(request: HttpRequest) -> Any:
    ask = getattr(request, "can", None)
    tenant = getattr(request, "tenant", None)
    if ask is None or tenant is None or not ask("billing.manage", for_reading=True):
        return None
    return dunning.banner_for(tenant=tenant)


def billing(request: HttpRequest) -> dict[str, Any]:
    return {"dunning_banner": SimpleLazyObject(lambda: _banner(request))}
