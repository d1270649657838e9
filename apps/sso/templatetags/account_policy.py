"""Template tags for sign-in policy prompts in the console (``{% load account_policy %}``)."""

from __future__ import annotations

from typing import Any

from django import template

from apps.sso import policy

register = template.Library()


@register.simple_tag(takes_context=True)
def sso_setup_prompt(context: template.Context) -> dict[str, Any] | None:
    """What the "set up SSO" banner needs, or ``None`` when it should not show.

    Shown to the administrators of the page's tenant (``current_tenant`` /
    ``current_membership`` from the console context) while the tenant has no
    enabled SSO connection: until then they sign in with a password and MFA.
    Who is an administrator is asked of ``apps.access`` (``policy.is_admin``:
    the built-in role, or a role bound to the member or to one of their IdP
    groups), the same rule the sign-in policy applies. The connection lookup is
    the one the tenant entry already made for this membership (no extra query).
    """
    tenant = context.get("current_tenant")
    membership = context.get("current_membership")
    if tenant is None or membership is None or policy.membership_connection(membership) is not None:
        return None
    if not policy.is_admin(membership):
        return None
    return {"tenant": tenant, "settings_url": f"/t/{tenant.slug}/settings/sso/"}
