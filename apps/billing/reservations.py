"""Preauthorisation: money reserved before a high-risk call, then settled with the actual cost, released, or expired.

A reservation holds its amount on every budget that applies to its payer
(``apps.billing.ledger.reserve``: one Lua script checks all of them and holds
on all or none, so concurrent reservations never together pass what is left).
The database row is written after the hold; if that write fails, the hold is
dropped again. Settling counts the actual cost (at most the amount reserved)
as spent and drops the hold; releasing drops it. Expiry holds without any
worker: Redis drops a hold whose time is up on the next operation on its
budget, and settling an expired reservation is refused by its ``expires_at``;
``reservations_expire`` (beat) only marks the rows.

A usage event that names a held reservation settles it with the event's cost
(``apps.billing.metering``). A model or tool marked "requires preauthorisation"
in the catalog is refused by the guard and by usage without one.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.billing import budgets, ledger
from apps.billing.errors import BillingError
from apps.billing.models import Budget, Reservation
from apps.tenants.models import Tenant

logger = logging.getLogger(__name__)


class ReservationError(BillingError):
    """A reservation request refused; ``slug`` and ``status`` say how the API answers."""

    status = 409
    slug = "reservation-conflict"


class ReservationNotFoundError(ReservationError):
    status = 404
    slug = "not-found"


class ReservationNotHeldError(ReservationError):
    slug = "reservation-not-held"


class ReservationExpiredError(ReservationError):
    slug = "reservation-expired"


class SettleTooLargeError(ReservationError):
    status = 422
    slug = "settle-over-reservation"


class BudgetDeniedError(BillingError):
    """A budget refused the money: names it and why (over the limit or throttled)."""

    def __init__(self, budget: Budget, reason: int) -> None:
        super().__init__(budgets.deny_message(budget, reason))
        self.budget = budget
        self.reason = reason

    @property
    def code(self) -> str:
        return budgets.REASONS.get(self.reason, "budget_exceeded")


def lifetime(requested: int | None) -> timedelta:
    most = int(settings.BILLING_RESERVATION_MAX_SECONDS)
    seconds = requested if requested is not None else int(settings.BILLING_RESERVATION_DEFAULT_SECONDS)
    return timedelta(seconds=max(1, min(most, seconds)))


def reservation_create(
    *,
    tenant: Tenant,
    client: Any,
    amount: Decimal,
    member: Any | None = None,
    model_name: str = "",
    tool_names: Sequence[str] = (),
    ttl_seconds: int | None = None,
    now: datetime | None = None,
) -> Reservation:
    """Hold ``amount`` on every budget of the payer; raises ``BudgetDeniedError`` naming the budget that refused."""
    now = now or timezone.now()
    period = budgets.period_of(now)
    found = budgets.budget_set(tenant_id=tenant.pk)
    held, lines = found.subset(found.applying(budgets.payer_for(client=client, member=member)))
    uid = uuid.uuid4()
    expires_at = now + lifetime(ttl_seconds)
    if lines:
        verdict, _ = ledger.reserve(
            lines, period, hold_id=str(uid), expires_ms=int(expires_at.timestamp() * 1000), amount=ledger.micros(amount)
        )
        if not verdict.fits:
            raise BudgetDeniedError(held[verdict.line_index], verdict.reason)
    try:
        row = Reservation.objects.create(
            tenant=tenant,
            uid=uid,
            client_id=getattr(client, "pk", None),
            member_id=getattr(member, "pk", None),
            model_name=model_name,
            tool_names=list(tool_names),
            amount=amount,
            currency=settings.BILLING_CURRENCY,
            budget_ids=[b.pk for b in held],
            period=budgets.period_start(period),
            created_at=now,
            expires_at=expires_at,
        )
    except Exception:
        if lines:  # the hold must not outlive a row that was never written
            ledger.finish(lines, period, hold_id=str(uid), actual=0)
        raise
    return row


def _owned(tenant: Tenant | int, client_id: int | None) -> Any:
    """A tenant's reservations, of one client when ``client_id`` is given (a client sees only its own)."""
    rows = Reservation.objects.for_tenant(tenant)
    return rows.filter(client_id=client_id) if client_id is not None else rows


def reservation_get(*, tenant: Tenant | int, uid: str, client_id: int | None = None) -> Reservation | None:
    """The reservation ``uid`` of ``tenant`` (and of ``client_id``); None for a malformed id or anyone else's."""
    try:
        parsed = uuid.UUID(str(uid))
    except ValueError:
        return None
    return _owned(tenant, client_id).filter(uid=parsed).first()


def _lines_of(row: Reservation) -> tuple[list[Budget], list[ledger.Line]]:
    return budgets.budgets_by_ids(tenant_id=row.tenant_id, ids=row.budget_ids)


def finish_locked(row: Reservation, *, actual: Decimal, status: str, now: datetime) -> Reservation:
    """Settle or release ``row`` (locked by the caller, held, not expired): counters first, then the row."""
    held, lines = _lines_of(row)
    period = row.period.strftime("%Y%m")
    if lines:
        before = [s.spent for s in ledger.standings(lines, period)]
        if not ledger.finish(lines, period, hold_id=str(row.uid), actual=ledger.micros(actual)):
            # Redis lost the hold (a restart): the row is the record; reconciliation rebuilds the counters.
            logger.warning("reservation %s had no hold in Redis; counters left to reconciliation", row.uid)
        elif actual:
            budgets.alerts_after(held, period, before, ledger.standings(lines, period))
    row.status = status
    row.actual = actual if status == Reservation.Status.SETTLED else None
    row.finished_at = now
    row.save(update_fields=["status", "actual", "finished_at"])
    return row


def _locked_held(tenant: Tenant | int, uid: str, now: datetime, client_id: int | None) -> Reservation:
    """The reservation locked, if it is held; an expired one is marked expired (committed) and refused."""
    try:
        parsed = uuid.UUID(str(uid))
    except ValueError:
        raise ReservationNotFoundError("No such reservation in this tenant.") from None
    row = _owned(tenant, client_id).select_for_update().filter(uid=parsed).first()
    if row is None:
        raise ReservationNotFoundError("No such reservation in this tenant.")
    if row.status == Reservation.Status.HELD and row.expires_at <= now:
        _expire_locked(row, now)
        raise _Expired(row)
    if row.status == Reservation.Status.EXPIRED:
        raise ReservationExpiredError(_expired_message(row))
    if row.status != Reservation.Status.HELD:
        raise ReservationNotHeldError(f"The reservation is already {row.status}.")
    return row


class _Expired(Exception):  # noqa: N818  # internal: commit the expiry, then refuse
    def __init__(self, row: Reservation) -> None:
        self.row = row


def _expired_message(row: Reservation) -> str:
    return f"The reservation expired at {row.expires_at:%Y-%m-%d %H:%M:%S} UTC."


def _finish(
    tenant: Tenant | int, uid: str, actual: Decimal | None, now: datetime, client_id: int | None
) -> Reservation:
    with transaction.atomic():
        try:
            row = _locked_held(tenant, uid, now, client_id)
        except _Expired as expired:
            stale = expired.row  # the block ends normally, so the expiry commits; then it is refused
        else:
            if actual is None:
                return finish_locked(row, actual=Decimal(0), status=Reservation.Status.RELEASED, now=now)
            if actual > row.amount:
                raise SettleTooLargeError(
                    f"The actual cost {actual} is more than the {row.amount} {row.currency} reserved; "
                    "reserve more next time (the reservation is unchanged)."
                )
            return finish_locked(row, actual=actual, status=Reservation.Status.SETTLED, now=now)
    raise ReservationExpiredError(_expired_message(stale))


def reservation_settle(
    *, tenant: Tenant | int, uid: str, actual: Decimal, client_id: int | None = None, now: datetime | None = None
) -> Reservation:
    """Count ``actual`` (at most the amount reserved) as spent and drop the hold. Raises a ``ReservationError``.

    With ``client_id``, only that client's reservation is found (another client's is "not found").
    """
    return _finish(tenant, uid, actual, now or timezone.now(), client_id)


def reservation_release(
    *, tenant: Tenant | int, uid: str, client_id: int | None = None, now: datetime | None = None
) -> Reservation:
    """Drop the hold without spending. Raises a ``ReservationError`` (``client_id`` as for settling)."""
    return _finish(tenant, uid, None, now or timezone.now(), client_id)


def _expire_locked(row: Reservation, now: datetime) -> None:
    _, lines = _lines_of(row)
    if lines:
        try:
            ledger.finish(lines, row.period.strftime("%Y%m"), hold_id=str(row.uid), actual=0)
        except ledger.LedgerUnavailableError:  # Redis drops the hold by its expiry anyway
            logger.warning("reservation %s expired while Redis was unavailable", row.uid)
    row.status = Reservation.Status.EXPIRED
    row.finished_at = now
    row.save(update_fields=["status", "finished_at"])


def reservations_expire(*, now: datetime | None = None, batch: int = 500) -> int:
    """Mark held reservations past their time as expired (beat); returns how many. Safe to run twice at once."""
    now = now or timezone.now()
    done = 0
    while True:
        with transaction.atomic():
            rows = list(
                Reservation.objects.select_for_update(skip_locked=True)
                .filter(status=Reservation.Status.HELD, expires_at__lte=now)
                .order_by("expires_at")[:batch]
            )
            for row in rows:
                _expire_locked(row, now)
        done += len(rows)
        if len(rows) < batch:
            return done
