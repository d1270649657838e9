"""Monthly budgets: which apply to a call, the counters behind them, alerts once per period, and reconciliation.

A budget is for the whole tenant, one role (the role the calling client acts
as, or the base role of the member a call is made for) or one API client (every
call the client reports). Its hard limit is money per calendar month (UTC); its
soft share (default 80 %) raises one alert per period (e-mail to the members
holding ``billing.manage`` and an in-app notice on the billing pages); an
optional per-minute amount throttles spend (a token bucket on money).

The request path reads and changes the counters in Redis only
(``apps.billing.ledger``); ``budgets_reconcile`` (beat) recomputes each
budget's month from the database (accepted usage not covered by a reservation,
plus settled reservations) and repairs a counter that drifted, e.g. after a
Redis restart or a request that died between Redis and its commit.

Writes (create, update, delete) are audited and need ``billing.manage``,
checked by the view through ``access``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from apps.access.decisions import held_permissions
from apps.audit.services import Actor, record
from apps.billing import ledger
from apps.billing.models import Budget, BudgetAlert, Reservation, UsageEvent
from apps.billing.notices.services import budget_alert_enqueue
from apps.tenants.models import Membership, Tenant

logger = logging.getLogger(__name__)

BUDGET_FIELDS = ("name", "scope", "role_id", "client_id", "amount", "soft_percent", "per_minute", "active")


# --- periods -----------------------------------------------------------------------------------


def period_of(moment: datetime) -> str:
    """The budget period (calendar month, UTC) of ``moment`` as ``YYYYMM``."""
    return moment.astimezone(UTC).strftime("%Y%m")


def period_start(period: str) -> date:
    return date(int(period[:4]), int(period[4:]), 1)


def period_bounds(period: str) -> tuple[datetime, datetime]:
    start = period_start(period)
    end = date(start.year + (start.month == 12), start.month % 12 + 1, 1)
    return datetime(start.year, start.month, 1, tzinfo=UTC), datetime(end.year, end.month, 1, tzinfo=UTC)


# --- which budgets apply -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payer:
    """Who a charge is for: the reporting client, and the role it is judged by (a built-in key or a custom role id)."""

    client_id: int | None
    role_key: str = ""
    role_id: int | None = None


def payer_for(*, client: Any, member: Any | None = None) -> Payer:
    """The payer of a call reported by ``client`` (an API client), made for ``member`` if one is named."""
    if member is not None:
        return Payer(client_id=getattr(client, "pk", None), role_key=str(member.role))
    return Payer(
        client_id=getattr(client, "pk", None),
        role_key=getattr(client, "role_key", "") or "",
        role_id=getattr(client, "role_id", None),
    )


@dataclass(frozen=True, slots=True)
class BudgetSet:
    """A tenant's active budgets with their ledger lines, in one fixed order."""

    budgets: tuple[Budget, ...]
    lines: tuple[ledger.Line, ...]

    def applying(self, payer: Payer) -> list[int]:
        """Indexes of the budgets that ``payer``'s charges count against."""
        found = []
        for index, budget in enumerate(self.budgets):
            if self._applies(budget, payer):
                found.append(index)
        return found

    @staticmethod
    def _applies(budget: Budget, payer: Payer) -> bool:
        if budget.scope == Budget.Scope.TENANT:
            return True
        if budget.scope == Budget.Scope.CLIENT:
            return budget.client_id is not None and budget.client_id == payer.client_id
        if budget.scope != Budget.Scope.ROLE or budget.role is None:
            return False
        if payer.role_id is not None:  # a custom role: by its id
            return budget.role_id == payer.role_id
        return budget.role.builtin and budget.role.key == payer.role_key

    def subset(self, indexes: Sequence[int]) -> tuple[list[Budget], list[ledger.Line]]:
        return [self.budgets[i] for i in indexes], [self.lines[i] for i in indexes]


def line_for(budget: Budget) -> ledger.Line:
    return ledger.Line(
        budget_id=budget.pk,
        limit=ledger.micros(budget.amount),
        per_minute=ledger.micros(budget.per_minute) if budget.per_minute else 0,
    )


def budget_set(*, tenant_id: int) -> BudgetSet:
    """The tenant's active budgets (one query), ordered by id so every caller builds the same lines."""
    budgets = tuple(Budget.objects.for_tenant(tenant_id).filter(active=True).select_related("role").order_by("pk"))
    return BudgetSet(budgets=budgets, lines=tuple(line_for(b) for b in budgets))


def budgets_by_ids(*, tenant_id: int, ids: Sequence[int]) -> tuple[list[Budget], list[ledger.Line]]:
    """Budgets of ``ids`` in the tenant (active or not: a reservation's hold is released on each)."""
    budgets = list(Budget.objects.for_tenant(tenant_id).filter(pk__in=list(ids)).order_by("pk"))
    return budgets, [line_for(b) for b in budgets]


def describe(budget: Budget) -> dict[str, Any]:
    """How an API answer names a budget."""
    return {"id": budget.pk, "name": budget.name, "scope": budget.scope, "limit": str(budget.amount)}


REASONS = {ledger.OVER_LIMIT: "budget_exceeded", ledger.THROTTLED: "budget_throttled"}


def deny_message(budget: Budget, reason: int) -> str:
    if reason == ledger.THROTTLED:
        return f"Budget “{budget.name}” allows at most {budget.per_minute} {budget.currency} a minute."
    return f"Budget “{budget.name}” ({budget.amount} {budget.currency} a month) would be exceeded."


# --- alerts ------------------------------------------------------------------------------------


def alerts_after(
    budgets: Sequence[Budget], period: str, before: Sequence[int], after: Sequence[ledger.Standing]
) -> None:
    """Enqueue (on commit) a soft alert for each budget whose spend crossed its soft share in this change."""
    for budget, old, new in zip(budgets, before, after, strict=True):
        soft = ledger.micros(budget.amount) * budget.soft_percent // 100
        if old < soft <= new.spent:
            alert_enqueue(budget_id=budget.pk, period=period, kind=BudgetAlert.Kind.SOFT)


def alerts_rearm(budget: Budget, *, now: datetime | None = None) -> int:
    """Drop this month's alerts of ``budget`` that its (changed) limits no longer reach; returns how many.

    An alert is once per budget and period; when the limit or the share moves (a plan
    change, an edit), the alert of the old threshold must not stand in for the new one.
    Alerts the recorded spend still reaches stay, so nobody gets a second e-mail for them.
    """
    soft = budget.amount * budget.soft_percent / 100
    this_month = BudgetAlert.objects.filter(budget=budget, period=period_start(period_of(now or timezone.now())))
    gone = this_month.filter(kind=BudgetAlert.Kind.SOFT, spent__lt=soft).delete()[0]
    return gone + this_month.filter(kind=BudgetAlert.Kind.HARD, spent__lt=budget.amount).delete()[0]


def alert_enqueue(*, budget_id: int, period: str, kind: str) -> None:
    budget_alert_enqueue(budget_id=budget_id, period=period, kind=kind)


def _billing_managers(tenant_id: int) -> list[str]:
    """E-mail addresses of the tenant's active members holding ``billing.manage`` (from any source)."""
    members = Membership.objects.for_tenant(tenant_id).filter(status=Membership.Status.ACTIVE)
    return sorted({m.user.email for m in members.select_related("tenant", "user") if m.user.email and can_manage(m)})


def can_manage(membership: Membership) -> bool:
    return "billing.manage" in held_permissions(membership)


def alert_raise(*, budget_id: int, period: str, kind: str) -> BudgetAlert | None:
    """Record the alert of ``budget`` for ``period`` once and notify; None when it was raised before.

    The unique (budget, period, kind) row is the once-per-period guarantee; the
    e-mail goes out in the same transaction that marks the row notified, so a
    retried task sends again only if the first attempt failed to commit.
    """
    from django.core.mail import send_mail

    budget = Budget.objects.filter(pk=budget_id).select_related("tenant").first()
    if budget is None:
        return None
    spent = budget_spent_db(budget=budget, period=period)
    with transaction.atomic():
        try:
            with transaction.atomic():
                alert = BudgetAlert.objects.create(
                    tenant=budget.tenant, budget=budget, period=period_start(period), kind=kind, spent=spent
                )
        except IntegrityError:
            alert = (
                BudgetAlert.objects.select_for_update(skip_locked=True)
                .filter(budget=budget, period=period_start(period), kind=kind, notified_at__isnull=True)
                .first()
            )
            if alert is None:
                return None
        share = int(spent * 100 / budget.amount) if budget.amount else 0
        subject = f"Budget “{budget.name}” of {budget.tenant.name} is at {share} %"
        link = settings.SITE_URL.rstrip("/") + f"/t/{budget.tenant.slug}/billing/budgets/"
        body = (
            f"Spend counted against the budget “{budget.name}” this month: {spent:.2f} {budget.currency} "
            f"of {budget.amount} {budget.currency} ({share} %).\n\n"
            + (
                "Calls are refused once the limit is reached.\n\n"
                if kind == BudgetAlert.Kind.SOFT
                else "The limit is reached: usage and guard calls counted against it are refused.\n\n"
            )
            + f"Budgets: {link}\n"
        )
        for address in _billing_managers(budget.tenant_id):
            send_mail(subject=subject, message=body, from_email=None, recipient_list=[address])
        alert.notified_at = timezone.now()
        alert.save(update_fields=["notified_at"])
        record(
            "budget.alert",
            tenant=budget.tenant,
            actor=Actor.system("budgets"),
            target=budget,
            metadata={"kind": kind, "period": period, "spent": str(spent), "share": share},
        )
    return alert


# --- the database's view, and reconciliation ----------------------------------------------------


def budget_spent_db(*, budget: Budget, period: str) -> Decimal:
    """What the database says ``budget`` spent in ``period``: accepted usage outside reservations + settled ones."""
    start, end = period_bounds(period)
    usage = UsageEvent.objects.for_tenant(budget.tenant_id).filter(
        status=UsageEvent.Status.ACCEPTED,
        reservation__isnull=True,
        received_at__gte=start,
        received_at__lt=end,
        budget_ids__contains=[budget.pk],
    )
    settled = Reservation.objects.for_tenant(budget.tenant_id).filter(
        status=Reservation.Status.SETTLED, period=period_start(period), budget_ids__contains=[budget.pk]
    )
    from django.db.models import Sum

    total = (usage.aggregate(total=Sum("cost"))["total"] or Decimal(0)) + (
        settled.aggregate(total=Sum("actual"))["total"] or Decimal(0)
    )
    return total.quantize(Decimal("0.000001"))


def _spent_by_budget(tenant_id: int, period: str) -> dict[int, int]:
    """Micro-units spent per budget id in ``period``, from the database, in one query."""
    start, end = period_bounds(period)
    sql = f"""
        SELECT b, SUM(c) FROM (
            SELECT unnest(budget_ids) AS b, cost AS c FROM {UsageEvent._meta.db_table}
             WHERE tenant_id = %s AND status = 'accepted' AND reservation_id IS NULL
               AND received_at >= %s AND received_at < %s
            UNION ALL
            SELECT unnest(budget_ids), actual FROM {Reservation._meta.db_table}
             WHERE tenant_id = %s AND status = 'settled' AND period = %s
        ) AS charges GROUP BY b
    """  # table names are ours; every value is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [tenant_id, start, end, tenant_id, period_start(period)])
        return {int(b): ledger.micros(total or Decimal(0)) for b, total in cursor.fetchall()}


@dataclass(frozen=True, slots=True)
class Reconciled:
    budgets: int
    repaired: int
    holds_restored: int


def budgets_reconcile(*, now: datetime | None = None) -> Reconciled:
    """Compare every active budget's counters of this month with the database and repair drift.

    Per tenant: read the Redis counters first, then the database sums, then set
    each counter that still reads what was read (a charge that landed in
    between leaves it for the next run). Held reservations the database has and
    Redis lost are put back. Also raises the soft alert of a budget found over
    its share (the request path only sees crossings).
    """
    now = now or timezone.now()
    period = period_of(now)
    checked = repaired = restored = 0
    tenant_ids = Budget.objects.filter(active=True).values_list("tenant_id", flat=True).distinct()
    for tenant_id in tenant_ids:
        budgets = budget_set(tenant_id=tenant_id)
        if not budgets.lines:
            continue
        lines = list(budgets.lines)
        holds = Reservation.objects.for_tenant(tenant_id).filter(
            status=Reservation.Status.HELD, period=period_start(period), expires_at__gt=now
        )
        for hold in holds:
            own = [line for line in lines if line.budget_id in hold.budget_ids]
            if own:
                restored += ledger.restore(
                    own,
                    period,
                    hold_id=str(hold.uid),
                    expires_ms=int(hold.expires_at.timestamp() * 1000),
                    amount=ledger.micros(hold.amount),
                )
        seen = ledger.standings(lines, period)
        truth = _spent_by_budget(tenant_id, period)
        pairs = [(standing.spent, truth.get(line.budget_id, 0)) for line, standing in zip(lines, seen, strict=True)]
        changed = ledger.set_spent(lines, period, pairs)
        if changed:
            logger.warning("budget counters of tenant %s repaired: %s", tenant_id, changed)
        repaired += changed
        checked += len(lines)
        for budget, (_, wanted) in zip(budgets.budgets, pairs, strict=True):
            soft = ledger.micros(budget.amount) * budget.soft_percent // 100
            if (
                wanted >= soft
                and not BudgetAlert.objects.filter(
                    budget=budget, period=period_start(period), kind=BudgetAlert.Kind.SOFT
                ).exists()
            ):
                alert_enqueue(budget_id=budget.pk, period=period, kind=BudgetAlert.Kind.SOFT)
    return Reconciled(budgets=checked, repaired=repaired, holds_restored=restored)


# --- budget writes (console) --------------------------------------------------------------------


def _snapshot(budget: Budget) -> dict[str, Any]:
    return {
        field: str(getattr(budget, field)) if getattr(budget, field) is not None else None for field in BUDGET_FIELDS
    }


def _validate(budget: Budget) -> None:
    errors: dict[str, list[str]] = {}
    if budget.scope != Budget.Scope.ROLE:
        budget.role_id = None
    if budget.scope != Budget.Scope.CLIENT:
        budget.client_id = None
    if budget.scope == Budget.Scope.ROLE and budget.role_id is None:
        errors["role"] = ["Choose the role this budget is for."]
    if budget.scope == Budget.Scope.CLIENT and budget.client_id is None:
        errors["client"] = ["Choose the API client this budget is for."]
    if budget.amount is None or Decimal(budget.amount) <= 0:
        errors["amount"] = ["The monthly limit must be more than zero."]
    if budget.soft_percent is None or not 1 <= int(budget.soft_percent) <= 100:
        errors["soft_percent"] = ["The alert share is a percentage from 1 to 100."]
    if budget.per_minute is not None and Decimal(budget.per_minute) <= 0:
        errors["per_minute"] = ["Leave the per-minute limit empty for none, or make it more than zero."]
    if errors:
        raise ValidationError(errors)
    # Field rules (amount > 0, soft share 1–100 …) and the model's constraints, as messages by field.
    budget.full_clean(exclude=["tenant", "role", "client"], validate_constraints=False)
    clash = Budget.objects.for_tenant(budget.tenant_id).exclude(pk=budget.pk)
    if clash.filter(name=budget.name).exists():
        raise ValidationError({"name": ["A budget with this name exists already."]})
    clash = clash.filter(source=Budget.Source.TENANT)  # the plan's budget applies besides the tenant's own
    same_target = Q(scope=budget.scope)
    if budget.scope == Budget.Scope.ROLE:
        same_target &= Q(role_id=budget.role_id)
    elif budget.scope == Budget.Scope.CLIENT:
        same_target &= Q(client_id=budget.client_id)
    if clash.filter(same_target).exists():
        raise ValidationError({"scope": ["There is a budget for this already; edit that one."]})


def _assign(budget: Budget, data: Mapping[str, Any]) -> None:
    """Copy the editable fields; ``role`` / ``client`` may be given as rows (the form's choices) or as ids."""
    for name in ("role", "client"):
        if name in data:
            setattr(budget, f"{name}_id", getattr(data[name], "pk", data[name]))
    for field in BUDGET_FIELDS:
        if field in data:
            setattr(budget, field, data[field])
    for field in ("amount", "per_minute"):  # two places, as stored (and as the audit log shows them)
        value = getattr(budget, field)
        if value is not None:
            with contextlib.suppress(ArithmeticError, ValueError, TypeError):  # else validation says what is wrong
                setattr(budget, field, Decimal(value).quantize(Decimal("0.01")))


def _actor(actor: Any | None) -> Actor:
    return Actor.for_user(actor) if actor is not None else Actor.from_context()


@transaction.atomic
def budget_create(*, tenant: Tenant, data: Mapping[str, Any], actor: Any | None = None) -> Budget:
    """Create a budget in ``tenant`` (the caller checked ``billing.manage``). Raises ValidationError by field.

    ``role_id`` / ``client_id`` must be of ``tenant``: the form narrows its choices to it.
    """
    budget = Budget(tenant=tenant, currency=settings.BILLING_CURRENCY)
    _assign(budget, data)
    _validate(budget)
    budget.save()
    record("budget.create", tenant=tenant, actor=_actor(actor), target=budget, metadata=_snapshot(budget))
    return budget


PLAN_MANAGED = "This budget comes from your plan: it changes with the plan and cannot be edited or deleted here."


class PlanManagedError(ValidationError):
    """A tenant tried to change or delete the budget its plan manages (``apps.billing.plan_budgets``)."""

    def __init__(self) -> None:
        super().__init__(PLAN_MANAGED, code="plan_managed")


@transaction.atomic
def budget_update(*, budget: Budget, data: Mapping[str, Any], actor: Any | None = None) -> Budget:
    """Change a budget (locked and re-read in its tenant); the audit event lists before and after.

    Raises PlanManagedError for the budget the tenant's plan manages.
    """
    locked = Budget.objects.for_tenant(budget.tenant_id).select_for_update().get(pk=budget.pk)
    if locked.source == Budget.Source.PLAN:
        raise PlanManagedError()
    before = _snapshot(locked)
    _assign(locked, data)
    _validate(locked)
    locked.save()
    if locked.amount != Decimal(before["amount"]) or str(locked.soft_percent) != before["soft_percent"]:
        alerts_rearm(locked)
    after = _snapshot(locked)
    changes = {k: {"from": before[k], "to": after[k]} for k in BUDGET_FIELDS if before[k] != after[k]}
    record("budget.update", tenant=locked.tenant_id, actor=_actor(actor), target=locked, metadata={"changes": changes})
    return locked


@transaction.atomic
def budget_delete(*, budget: Budget, actor: Any | None = None) -> None:
    """Delete a budget; its counters in Redis expire by themselves. Raises PlanManagedError for the plan's."""
    locked = Budget.objects.for_tenant(budget.tenant_id).select_for_update().filter(pk=budget.pk).first()
    if locked is not None and locked.source == Budget.Source.PLAN:
        raise PlanManagedError()
    snapshot = _snapshot(budget)
    record("budget.delete", tenant=budget.tenant_id, actor=_actor(actor), target=budget, metadata=snapshot)
    Budget.objects.for_tenant(budget.tenant_id).filter(pk=budget.pk).delete()


# --- reads for the pages ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetStanding:
    budget: Budget
    spent: Decimal
    reserved: Decimal
    share: int  # percent of the limit spent or held
    live: bool  # False when Redis did not answer (the figures are the database's)

    @property
    def remaining(self) -> Decimal:
        return max(Decimal(0), self.budget.amount - self.spent - self.reserved)


def budget_list(*, tenant: Tenant) -> QuerySet[Budget]:
    # The plan's budget first, then the tenant's own.
    return (
        Budget.objects.for_tenant(tenant).select_related("role", "client", "plan").order_by("source", "scope", "name")
    )


def budget_get(*, tenant: Tenant, pk: int) -> Budget | None:
    return budget_list(tenant=tenant).filter(pk=pk).first()


def budget_standings(*, tenant: Tenant, now: datetime | None = None) -> list[BudgetStanding]:
    """Each budget of ``tenant`` with this month's spend and holds (Redis; the database's sums if it is down)."""
    period = period_of(now or timezone.now())
    budgets = list(budget_list(tenant=tenant))
    lines = [line_for(b) for b in budgets]
    live = True
    try:
        counters = [(s.spent, s.reserved) for s in ledger.standings(lines, period)] if lines else []
    except ledger.LedgerUnavailableError:
        live = False
        truth = _spent_by_budget(tenant.pk, period)
        counters = [(truth.get(b.pk, 0), 0) for b in budgets]
    rows = []
    for budget, (spent, reserved) in zip(budgets, counters, strict=True):
        used = spent + reserved
        limit = ledger.micros(budget.amount)
        rows.append(
            BudgetStanding(
                budget=budget,
                spent=ledger.money(spent),
                reserved=ledger.money(reserved),
                share=int(used * 100 // limit) if limit else 0,
                live=live,
            )
        )
    return rows


def recent_alerts(*, tenant: Tenant, now: datetime | None = None) -> QuerySet[BudgetAlert]:
    """This month's budget alerts of ``tenant`` (the in-app notice)."""
    period = period_start(period_of(now or timezone.now()))
    return BudgetAlert.objects.for_tenant(tenant).filter(period=period).select_related("budget")
