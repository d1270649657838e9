"""Adyen event handlers: AUTHORISATION records the payment for its tenant; other event codes are ignored.

Called by ``services`` processing (one event, a drain or a batch) inside the transaction that marks the inbox row
done, so each is idempotent (one ``ProviderPayment`` per pspReference) and order-safe
(an older event never overwrites a newer one).

The tenant comes from ``merchantReference``, which Bastion sets when it creates the
payment (``bastion-<tenant id>-<anything>``) and which is inside the HMAC-signed string,
so it is a verified field. A reference in another shape is not a Bastion payment (the
merchant account may serve other shops): the handler returns ``IGNORED``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from apps.audit.services import Actor, record
from apps.billing.errors import BillingError, TenantMismatchError
from apps.billing.models import ProviderPayment
from apps.billing.providers.base import Handler, Ignored
from apps.tenants.models import Tenant

PROVIDER = "adyen"
REFERENCE_RE = re.compile(r"^bastion-(\d{1,18})-[A-Za-z0-9._-]{1,100}$")


def merchant_reference(tenant_id: int, suffix: str) -> str:
    """The merchantReference Bastion gives an Adyen payment for a tenant."""
    return f"bastion-{tenant_id}-{suffix}"


def _authorisation(event: dict[str, Any]) -> int | None:
    item = event["NotificationRequestItem"]
    reference = str(item.get("merchantReference") or "")
    match = REFERENCE_RE.match(reference)
    if match is None:
        raise Ignored(f"merchantReference {reference[:80]!r} is not a Bastion payment")
    tenant = Tenant.objects.filter(pk=int(match.group(1))).first()
    if tenant is None:
        raise TenantMismatchError(f"merchantReference names unknown tenant {match.group(1)}", claimed=match.group(1))
    amount = item.get("amount") if isinstance(item.get("amount"), dict) else {}
    value, currency = amount.get("value"), amount.get("currency")
    if not isinstance(value, int) or isinstance(value, bool) or not isinstance(currency, str) or len(currency) != 3:
        raise BillingError("AUTHORISATION without a valid amount")
    authorised = item.get("success") == "true"
    # Checked at intake (an aware ISO 8601 time); absent only in hand-made samples.
    created = int(datetime.fromisoformat(item["eventDate"]).timestamp()) if item.get("eventDate") else 0
    payment = (
        ProviderPayment.objects.select_for_update()
        .filter(provider=PROVIDER, psp_reference=item["pspReference"])
        .first()
    )
    if payment is None:
        payment = ProviderPayment.objects.create(
            tenant=tenant,
            provider=PROVIDER,
            psp_reference=item["pspReference"],
            merchant_reference=reference,
            amount_minor=value,
            currency=currency,
            authorised=authorised,
            event_created=created,
        )
    elif payment.tenant_id != tenant.pk:
        raise TenantMismatchError(
            f"pspReference {payment.psp_reference} belongs to another tenant",
            owner_id=payment.tenant_id,
            claimed=str(tenant.pk),
        )
    elif created < payment.event_created:
        return tenant.pk  # an older event than the one applied: no overwrite
    else:
        payment.authorised, payment.event_created = authorised, created
        payment.save(update_fields=["authorised", "event_created", "updated_at"])
    record(
        "billing.payment_authorised" if authorised else "billing.payment_refused",
        tenant=tenant,
        actor=Actor.system("adyen webhook"),
        target=payment,
        result="success" if authorised else "failure",
        metadata={
            "psp_reference": payment.psp_reference,
            "merchant_reference": reference,
            "amount_minor": value,
            "currency": currency,
            "reason": str(item.get("reason") or "")[:200],
        },
    )
    return tenant.pk


HANDLERS: dict[str, Handler] = {"AUTHORISATION": _authorisation}
