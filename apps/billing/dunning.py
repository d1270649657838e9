"""Dunning: what happens after a failed payment, until it is paid.

Timeline (invoice by invoice): ``invoice.payment_failed`` opens a case (banner for
billing admins at once, one e-mail to them after commit); when its grace
(``BILLING_GRACE_DAYS``, default 14) has passed, the daily ``dunning_enforce``
suspends the tenant through ``tenants.services.tenant_set_status`` with the
reason ``"non-payment"`` (read-only console, as any suspension); ``invoice.paid``
closes the case and lifts the suspension once no open case is past its grace.

Only a suspension whose reason is ``"non-payment"`` is ever lifted here: a
tenant platform staff suspended for anything else stays suspended, paid or not.
Staff may extend a tenant's grace (audited); an extension that leaves no case
past its grace lifts a non-payment suspension too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone

from apps.access.decisions import held_permissions
from apps.audit.services import Actor, record
from apps.billing.errors import BillingError
from apps.billing.models import DunningCase, Invoice
from apps.tenants.models import Membership, Tenant
from apps.tenants.services import tenant_set_status

logger = logging.getLogger(__name__)

NON_PAYMENT = "non-payment"
NOTICE_TASK = "apps.billing.tasks.send_dunning_notice"
MAX_EXTENSION_DAYS = 90


def grace_days() -> int:
    return int(getattr(settings, "BILLING_GRACE_DAYS", 14))


# --- reads ---------------------------------------------------------------------------------------


def open_cases(*, tenant: Tenant | int) -> QuerySet[DunningCase]:
    """The tenant's unpaid failed invoices, the one whose grace ends first first (index billing_dunning_open)."""
    return DunningCase.objects.for_tenant(tenant).filter(resolved_at__isnull=True).order_by("grace_until", "pk")


def banner_case(*, tenant: Tenant) -> DunningCase | None:
    """The case the billing page shows (one indexed query)."""
    return open_cases(tenant=tenant).first()


@dataclass(frozen=True)
class Banner:
    grace_until: datetime


# The banner is on every page a billing admin opens; its state is cached per tenant so that the
# steady state costs no query (console query counts are pinned). Every change of a tenant's open
# cases drops the entry after commit; the TTL bounds what a read racing that commit could keep.
BANNER_CACHE_SECONDS = 120


def _banner_key(tenant_id: int) -> str:
    return f"billing:dunning-banner:{tenant_id}"


def banner_for(*, tenant: Tenant) -> Banner | None:
    """The failed-payment banner of ``tenant`` (grace end of the earliest open case), or None."""
    key = _banner_key(tenant.pk)
    cached = cache.get(key)
    if cached is None:
        case = banner_case(tenant=tenant)
        cached = case.grace_until.isoformat() if case else ""
        cache.set(key, cached, BANNER_CACHE_SECONDS)
    return Banner(grace_until=datetime.fromisoformat(cached)) if cached else None


def _forget_banner(tenant_id: int) -> None:
    transaction.on_commit(lambda: cache.delete(_banner_key(tenant_id)), robust=True)


def open_cases_all() -> QuerySet[DunningCase]:
    """Every tenant's unpaid failed invoices, grace ending first (the staff page; small by nature)."""
    return DunningCase.objects.filter(resolved_at__isnull=True).select_related("tenant").order_by("grace_until", "pk")


def _past_grace(tenant_id: int, now: datetime) -> bool:
    return open_cases(tenant=tenant_id).filter(grace_until__lte=now).exists()


# --- from the webhook handlers (inside the event's transaction) ---------------------------------


def case_open(*, tenant_id: int, invoice_id: str, now: datetime | None = None) -> DunningCase:
    """Open the case for a failed invoice (idempotent: a retry of the same invoice opens nothing new).

    The e-mail to billing admins is enqueued after commit, and sent at most once per case.
    """
    now = now or timezone.now()
    case, created = DunningCase.objects.get_or_create(
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        defaults={"opened_at": now, "grace_until": now + timedelta(days=grace_days())},
    )
    if created:
        _forget_banner(tenant_id)
    if created or case.notified_at is None:
        transaction.on_commit(lambda: _enqueue_notice(case.pk), robust=True)
    return case


def case_resolve(*, tenant_id: int, invoice_id: str, now: datetime | None = None) -> bool:
    """Close the case of a paid invoice; lift a non-payment suspension no other case still justifies."""
    now = now or timezone.now()
    closed = DunningCase.objects.for_tenant(tenant_id).filter(invoice_id=invoice_id, resolved_at__isnull=True)
    if not closed.update(resolved_at=now):
        return False
    _forget_banner(tenant_id)
    _lift_if_clear(tenant_id, now=now, why=f"invoice {invoice_id} paid")
    return True


def _lift_if_clear(tenant_id: int, *, now: datetime, why: str) -> bool:
    tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
    if not (tenant.is_suspended and tenant.suspended_reason == NON_PAYMENT):
        return False  # active, or suspended by staff for another reason: never ours to lift
    if _past_grace(tenant_id, now):
        return False
    tenant_set_status(tenant=tenant, suspended=False)  # publishes a new access version (tenants.events)
    record(
        "billing.dunning_lifted",
        tenant=tenant_id,
        actor=Actor.system("billing dunning"),
        target=tenant,
        metadata={"why": why},
    )
    return True


def _enqueue_notice(case_id: int) -> None:
    # By name from the Celery registry: the task module is a face over this one, never imported here.
    from celery import current_app

    try:
        current_app.tasks[NOTICE_TASK].delay(case_id)
    except Exception:  # noqa: BLE001 — a broker outage must not fail the webhook; the daily run retries
        logger.warning("billing: could not enqueue dunning notice for case %s", case_id, exc_info=True)


# --- the worker ----------------------------------------------------------------------------------


def billing_admin_emails(*, tenant_id: int) -> list[str]:
    """E-mail addresses of the tenant's active members who hold billing.manage (from any source)."""
    members = (
        Membership.objects.for_tenant(tenant_id)
        .filter(status=Membership.Status.ACTIVE)
        .select_related("tenant", "user")
    )
    return sorted({m.user.email for m in members if m.user.email and "billing.manage" in held_permissions(m)})


def notice_send(*, case_id: int) -> int:
    """E-mail the billing admins about one failed invoice, once: returns how many were sent (0 if done before).

    The case row is locked while sending and marked in the same transaction: a
    second task (retry, sweep) waits or skips, and a failed send leaves it unmarked.
    """
    from django.core.mail import send_mail

    with transaction.atomic():
        case = (
            # Only the case row is locked (``of``), not the tenant joined in: sending takes a while.
            DunningCase.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(pk=case_id, notified_at__isnull=True, resolved_at__isnull=True)
            .select_related("tenant")
            .first()
        )
        if case is None:
            return 0
        tenant = case.tenant
        invoice = Invoice.objects.for_tenant(tenant).filter(invoice_id=case.invoice_id).first()
        amount = f"{invoice.amount_due / 100:.2f} {invoice.currency.upper()}" if invoice else ""
        link = settings.SITE_URL.rstrip("/") + reverse("billing_console:overview", kwargs={"tenant_slug": tenant.slug})
        subject = f"Payment failed for {tenant.name}: please update your payment method"
        body = (
            f"The payment of invoice {(invoice and invoice.number) or case.invoice_id} {amount} failed.\n\n"
            f"Unless it is paid by {case.grace_until:%d %B %Y, %H:%M} UTC, {tenant.name} becomes read-only "
            f"in Bastion until it is paid.\n\n"
            f"Billing page: {link}\n"
            + (f"Pay the invoice: {invoice.hosted_invoice_url}\n" if invoice and invoice.hosted_invoice_url else "")
        )
        sent = 0
        for address in billing_admin_emails(tenant_id=tenant.pk):
            send_mail(subject=subject, message=body, from_email=None, recipient_list=[address])
            sent += 1
        case.notified_at = timezone.now()
        case.save(update_fields=["notified_at"])
    return sent


def dunning_enforce(*, now: datetime | None = None) -> int:
    """Suspend (reason "non-payment") each active tenant with a case past its grace; returns how many.

    Also re-sends a notice that never went out (a broker outage when the case opened).
    A tenant staff suspended for another reason is left as it is.
    """
    now = now or timezone.now()
    for case_id in DunningCase.objects.filter(notified_at__isnull=True, resolved_at__isnull=True).values_list(
        "pk", flat=True
    )[:500]:
        _enqueue_notice(case_id)
    suspended = 0
    due = (
        DunningCase.objects.filter(resolved_at__isnull=True, grace_until__lte=now)
        .values_list("tenant_id", flat=True)
        .distinct()
    )
    for tenant_id in list(due):
        with transaction.atomic():
            tenant = Tenant.objects.select_for_update().get(pk=tenant_id)
            cases = open_cases(tenant=tenant_id).filter(grace_until__lte=now)
            if tenant.is_suspended:
                if tenant.suspended_reason == NON_PAYMENT:
                    cases.filter(suspended_at__isnull=True).update(suspended_at=now)
                continue
            if not cases.exists():
                continue  # paid or extended meanwhile
            # Publishes a new access version (tenants.events), so a warm runtime-API process stops
            # accepting usage and reservations of the suspended tenant at once.
            tenant_set_status(tenant=tenant, suspended=True, reason=NON_PAYMENT)
            cases.filter(suspended_at__isnull=True).update(suspended_at=now)
            record(
                "billing.dunning_suspended",
                tenant=tenant,
                actor=Actor.system("billing dunning"),
                target=tenant,
                result="failure",
                metadata={"invoices": list(cases.values_list("invoice_id", flat=True))},
            )
            suspended += 1
    return suspended


# --- staff ---------------------------------------------------------------------------------------


@transaction.atomic
def grace_extend(*, tenant: Tenant, days: int, reason: str, by: Any, now: datetime | None = None) -> int:
    """Push every open case's grace to ``max(grace, now) + days``; audited on both chains. Returns how many.

    Lifts a non-payment suspension when no case is past its grace afterwards.
    Raises BillingError for days outside 1–90, no reason, or no open case.
    """
    now = now or timezone.now()
    if not 1 <= days <= MAX_EXTENSION_DAYS:
        raise BillingError(f"Extend by 1 to {MAX_EXTENSION_DAYS} days.")
    if not reason.strip():
        raise BillingError("Say why the grace is extended (it goes into the audit log).")
    cases = list(open_cases(tenant=tenant).select_for_update())
    if not cases:
        raise BillingError(f"{tenant.name} has no unpaid failed invoice; there is no grace to extend.")
    changes = []
    for case in cases:
        before = case.grace_until
        case.grace_until = max(case.grace_until, now) + timedelta(days=days)
        case.grace_extensions += 1
        case.save(update_fields=["grace_until", "grace_extensions"])
        changes.append(
            {"invoice": case.invoice_id, "before": before.isoformat(), "after": case.grace_until.isoformat()}
        )
    _forget_banner(tenant.pk)
    meta = {"days": days, "reason": reason.strip()[:500], "cases": changes}
    for chain in (tenant, None):
        record("billing.grace_extended", tenant=chain, actor=Actor.for_user(by), target=tenant, metadata=meta)
    _lift_if_clear(tenant.pk, now=now, why=f"grace extended by {days} days")
    return len(cases)
