"""The emergency sign-in card on the tenant dashboard (a face; see ``apps.tenants.dashboard``).

Shown to those who manage SSO (``sso.manage``) while an emergency account's
sign-in waits for an Owner's acknowledgement (#11, item 8); it asks for
attention. The Acknowledge button is offered to Owners only (the service
checks it again). One indexed query when nothing waits, three otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from apps.sso import emergency
from apps.tenants.dashboard import Card

if TYPE_CHECKING:
    from apps.access.decorators import TenantRequest


def emergency_sign_ins_card(request: TenantRequest) -> Card | None:
    if not request.can("sso.manage"):
        return None
    sign_ins, total = emergency.open_sign_ins(tenant=request.tenant)
    if not sign_ins:
        return None
    return Card(
        template="sso/partials/_dashboard_card.html",
        context={
            "sign_ins": sign_ins,
            "total": total,
            "more": total - len(sign_ins),
            "may_acknowledge": emergency.is_owner(request.membership),
        },
        attention=True,
    )
