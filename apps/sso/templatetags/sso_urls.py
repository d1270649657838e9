"""``{% sso_url "detail" connection_id=… %}``: a URL of the SSO settings pages being shown.

The same templates serve a tenant's SSO settings (/t/<slug>/settings/sso/)
and the platform's (/platform/sso/); the request's tenant (None on the
platform pages) picks which.
"""

from __future__ import annotations

from typing import Any

from django import template

from apps.sso.views._common import _settings_url

register = template.Library()


@register.simple_tag(takes_context=True)
def sso_url(context: template.Context, name: str, **kwargs: Any) -> str:
    request = context.get("request")
    return _settings_url(getattr(request, "tenant", None), name, **kwargs)
