"""Template tags for sign-in policy prompts in the console (``{% load account_policy %}``)."""

from __future__ import annotations

from typing import Any

from django import template

from apps.sso import policy

register = template.Library()


@register.simple_tag(takes_context=True)
def sso_setup_prompt(context: template.Context) -> dict[str, Any] | None:
    """What the "set up SSO" banner needs, or ``None`` when it should not show.

    Shown to the owners and admins of the page's tenant (``current_tenant`` /
    ``current_membership`` from the console context) while the tenant has no
    enabled SSO connection: until then they sign in with a password and MFA.
    One query, only for owners and admins.
    """
    tenant = context.get("current_tenant")
    membership = context.get("current_membership")
    if tenant is None or membership is None or membership.role not in policy.ADMIN_ROLES:
        return None
    if policy.tenant_has_working_sso(tenant):
        return None
    return {"tenant": tenant, "settings_url": f"/t/{tenant.slug}/settings/sso/"}
