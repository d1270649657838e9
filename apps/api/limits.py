"""Which rate limit applies to a call: the client's, else its tenant's, else the installation default.

Per client and per tenant from the token's context (the API client's and the
tenant token policy's ``rate_limit_per_minute``, when ``keys`` sets them), then
``settings.API_RATE_LIMITS`` (``{"client:<client_id>": n, "tenant:<tenant_id>": n}``,
for operators), then ``settings.API_RATE_LIMIT_PER_MINUTE``.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from apps.api.meter import Limit


def limit_for(token: Any) -> Limit:
    """The bucket size for the caller of ``token`` (a ``TokenContext``); read from memory only."""
    overrides: dict[str, int] = getattr(settings, "API_RATE_LIMITS", {}) or {}
    client_limit = getattr(token, "client_rate_limit", None) or overrides.get(f"client:{token.client_id}")
    if client_limit:
        return Limit(int(client_limit), "client")
    tenant_limit = getattr(token, "tenant_rate_limit", None) or overrides.get(f"tenant:{token.tenant.id}")
    if tenant_limit:
        return Limit(int(tenant_limit), "tenant")
    return Limit(int(settings.API_RATE_LIMIT_PER_MINUTE), "default")
