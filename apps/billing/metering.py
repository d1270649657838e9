"""Usage ingest: each call stored once per (tenant, idempotency key), priced, and counted against budgets.

One batch (up to ``MAX_BATCH`` events) costs a fixed number of round trips,
whatever its size: one query for the tenant's models, one for its
preauthorisation-required tools, one for its budgets, one ``INSERT … SELECT
FROM unnest(…) ON CONFLICT (tenant, idempotency_key) DO NOTHING RETURNING``
(so a key already stored, or stored by a concurrent request, is a duplicate:
the unique index decides, never a read-then-write), one Lua call that charges
every new event against its budgets in order, and an ``UPDATE`` only when
something was denied. All of it in one transaction: when Redis does not answer
the transaction rolls back and the caller gets a 503 to retry with the same
keys (nothing half-stored, nothing counted twice).

Pricing: the catalog's per-1,000-token prices of the model (``Decimal``, six
places, half up), in ``settings.BILLING_CURRENCY``. Outcomes per event:

- ``accepted``: stored and counted;
- ``duplicate``: the key was stored before (the original's id and status are returned);
- ``denied``: stored for the record but not counted or billed, because a
  budget's hard limit or throttle refused it, or its model or a tool requires
  preauthorisation and it named no held reservation;
- ``rejected``: not stored (unknown model, member or reservation; a timestamp
  older than 35 days or more than five minutes ahead).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from apps.billing import budgets, ledger
from apps.billing.models import Reservation, UsageEvent
from apps.billing.reservations import finish_locked
from apps.catalog.models import AIModel, Tool
from apps.tenants.models import Tenant

MAX_BATCH = 1000
# Events older than Stripe's window for meter events, or from the future (a skewed clock), are rejected.
MAX_PAST = timedelta(days=35)
MAX_FUTURE = timedelta(minutes=5)
QUANTUM = Decimal("0.000001")
THOUSAND = Decimal(1000)

ACCEPTED, DUPLICATE, DENIED, REJECTED = "accepted", "duplicate", "denied", "rejected"
_hard_alerted: set[tuple[int, str, str]] = set()  # (budget, period, limit): a raised limit is asked again


@dataclass(frozen=True, slots=True)
class UsageIn:
    """One reported call, validated by the face; ``member`` resolved in the token's tenant (or None)."""

    idempotency_key: str
    model: str
    input_tokens: int
    output_tokens: int
    occurred_at: datetime
    context_tokens: int = 0
    tool_calls: tuple[str, ...] = ()
    member: Any | None = None
    member_missing: bool = False  # a member was named and is not in this tenant
    prompt_hash: str = ""
    reservation_id: str | None = None


@dataclass(slots=True)
class UsageOutcome:
    idempotency_key: str
    status: str
    event_id: int | None = None
    cost: Decimal | None = None
    reason: str = ""
    message: str = ""
    budget: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Priced:
    model: AIModel
    cost: Decimal


# --- the catalog, as metering reads it -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Catalog:
    """The tenant's models by "provider/name" and by name (when unique), and its preauthorisation-required tools."""

    models: dict[str, AIModel]
    preauth_tools: frozenset[str]
    tools: dict[str, Tool] = field(default_factory=dict)

    def model(self, name: str) -> AIModel | None:
        return self.models.get(name.strip())


def catalog_for(*, tenant_id: int, tool_names: Sequence[str] = ()) -> Catalog:
    """Two queries: every model of the tenant, and its tools that require preauthorisation (or are named)."""
    by_name: dict[str, AIModel] = {}
    clashes: set[str] = set()
    for model in AIModel.objects.for_tenant(tenant_id):
        by_name[f"{model.provider}/{model.model_name}"] = model
        if model.model_name in by_name and model.model_name not in clashes:
            clashes.add(model.model_name)
        by_name.setdefault(model.model_name, model)
    for name in clashes:  # a bare name two providers share is ambiguous: "provider/name" only
        by_name.pop(name, None)
    tools: dict[str, Tool] = {}
    query = Tool.objects.for_tenant(tenant_id).filter(requires_preauth=True)
    if tool_names:
        query = Tool.objects.for_tenant(tenant_id).filter(name__in=list(tool_names)) | query
    for tool in query:
        tools[tool.name] = tool
    return Catalog(
        models=by_name,
        preauth_tools=frozenset(name for name, tool in tools.items() if tool.requires_preauth),
        tools=tools,
    )


def price(model: AIModel, *, input_tokens: int, output_tokens: int) -> Decimal:
    """The cost of a call at the model's prices per 1,000 tokens (six decimal places, half up)."""
    raw = (Decimal(input_tokens) * model.price_per_1k_input + Decimal(output_tokens) * model.price_per_1k_output) / (
        THOUSAND
    )
    return raw.quantize(QUANTUM, rounding=ROUND_HALF_UP)


def preauth_needed(catalog: Catalog, model: AIModel | None, tool_names: Sequence[str]) -> list[str]:
    """What in this call requires preauthorisation: "model …" and "tool …" labels, empty if nothing."""
    needed = []
    if model is not None and model.requires_preauth:
        needed.append(f"model {model.provider}/{model.model_name}")
    needed.extend(f"tool {name}" for name in dict.fromkeys(tool_names) if name in catalog.preauth_tools)
    return needed


# --- ingest ------------------------------------------------------------------------------------

_TABLE = UsageEvent._meta.db_table
_COLUMNS = (
    "tenant_id",
    "client_id",
    "member_id",
    "model_id",
    "model_name",
    "input_tokens",
    "output_tokens",
    "context_tokens",
    "tool_calls",
    "cost",
    "currency",
    "prompt_hash",
    "idempotency_key",
    "occurred_at",
    "received_at",
    "status",
    "denied_reason",
    "budget_ids",
    "reservation_id",
)
_TYPES = (
    "bigint",
    "bigint",
    "bigint",
    "bigint",
    "text",
    "bigint",
    "bigint",
    "bigint",
    "text",  # a JSON list per row (unnest flattens arrays of arrays)
    "numeric",
    "text",
    "text",
    "text",
    "timestamptz",
    "timestamptz",
    "text",
    "text",
    "text",  # a JSON list per row, as tool_calls
    "bigint",
)
_SELECT = ", ".join(
    (
        f"ARRAY(SELECT jsonb_array_elements_text(c{i}::jsonb))"
        if name == "tool_calls"
        else f"ARRAY(SELECT jsonb_array_elements_text(c{i}::jsonb)::bigint)"
        if name == "budget_ids"
        else f"c{i}"
    )
    for i, name in enumerate(_COLUMNS)
)
_INSERT = (
    f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) "  # our table and columns; values are parameters
    f"SELECT {_SELECT} FROM unnest({', '.join(f'%s::{t}[]' for t in _TYPES)}) "
    f"AS u({', '.join(f'c{i}' for i in range(len(_COLUMNS)))}) "
    "ON CONFLICT (tenant_id, idempotency_key) DO NOTHING RETURNING id, idempotency_key"
)


@dataclass(slots=True)
class _Row:
    """An event about to be stored: what goes in the table, and how it will be charged."""

    event: UsageIn
    outcome: UsageOutcome
    model: AIModel
    cost: Decimal
    status: str = ACCEPTED
    denied_reason: str = ""
    budget_indexes: list[int] = field(default_factory=list)
    reservation: Reservation | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    outcomes: list[UsageOutcome]
    denied_by: dict[str, Any] | None  # the first budget that refused an event, if any


def _reject(outcome: UsageOutcome, reason: str, message: str) -> None:
    outcome.status, outcome.reason, outcome.message = REJECTED, reason, message


def _deny(row: _Row, reason: str, message: str, budget: dict[str, Any] | None = None) -> None:
    row.status, row.denied_reason = DENIED, message[:300]
    row.outcome.status, row.outcome.reason, row.outcome.message, row.outcome.budget = DENIED, reason, message, budget


def _reservations(tenant_id: int, client_id: int | None, events: Sequence[UsageIn]) -> dict[str, Reservation]:
    import uuid

    wanted = set()
    for event in events:
        if event.reservation_id:
            try:
                wanted.add(uuid.UUID(event.reservation_id))
            except ValueError:
                continue
    if not wanted:
        return {}
    # A client uses only its own reservations; another client's is "unknown", like another tenant's.
    rows = Reservation.objects.for_tenant(tenant_id).filter(client_id=client_id)
    rows = rows.select_for_update().filter(uid__in=wanted).order_by("pk")
    return {str(row.uid): row for row in rows}


def usage_ingest(
    *, tenant: Tenant, client: Any, events: Sequence[UsageIn], now: datetime | None = None
) -> IngestResult:
    """Store, price and count a batch of usage (see the module docstring). Raises ``LedgerUnavailableError``."""
    now = now or timezone.now()
    period = budgets.period_of(now)
    outcomes = [UsageOutcome(idempotency_key=e.idempotency_key, status=ACCEPTED) for e in events]
    catalog = catalog_for(tenant_id=tenant.pk)
    found = budgets.budget_set(tenant_id=tenant.pk)
    payers: dict[Any, list[int]] = {}
    rows: list[_Row] = []
    seen: set[str] = set()
    denied_by: dict[str, Any] | None = None
    with transaction.atomic():
        reservations = _reservations(tenant.pk, getattr(client, "pk", None), events)
        claimed: set[str] = set()
        for event, outcome in zip(events, outcomes, strict=True):
            if event.idempotency_key in seen:
                outcome.status = DUPLICATE
                outcome.reason = "duplicate_in_batch"
                continue
            seen.add(event.idempotency_key)
            if not now - MAX_PAST <= event.occurred_at <= now + MAX_FUTURE:
                _reject(outcome, "timestamp_out_of_range", "The timestamp must be within the last 35 days.")
                continue
            model = catalog.model(event.model)
            if model is None:
                _reject(outcome, "unknown_model", "No such model in this tenant (use provider/model_name).")
                continue
            if event.member_missing:
                _reject(outcome, "unknown_member", "No such member in this tenant.")
                continue
            row = _Row(
                event, outcome, model, price(model, input_tokens=event.input_tokens, output_tokens=event.output_tokens)
            )
            outcome.cost = row.cost
            if event.reservation_id:
                reservation = reservations.get(str(event.reservation_id).lower())
                if reservation is None:
                    _reject(outcome, "unknown_reservation", "No such reservation in this tenant.")
                    continue
                row.reservation = reservation
            member_key = getattr(event.member, "pk", None)
            if member_key not in payers:
                payers[member_key] = found.applying(budgets.payer_for(client=client, member=event.member))
            row.budget_indexes = payers[member_key]
            needed = preauth_needed(catalog, model, event.tool_calls)
            if row.reservation is not None:
                problem = _reservation_problem(row.reservation, row.cost, now, claimed)
                if problem:
                    _deny(row, "reservation_unusable", problem)
                else:
                    claimed.add(str(row.reservation.uid))
            elif needed:
                _deny(
                    row,
                    "preauthorisation_required",
                    f"Requires preauthorisation ({', '.join(needed)}): reserve first and name the reservation.",
                )
            rows.append(row)
        inserted = _insert(tenant, client, rows, now, found)
        # Charge what was stored just now, in order; duplicates were counted when first stored.
        fresh = [row for row in rows if row.outcome.idempotency_key in inserted]
        charged = [row for row in fresh if row.status == ACCEPTED and row.reservation is None]
        if charged and found.lines:
            result = ledger.charge(
                found.lines, period, [(ledger.micros(row.cost), row.budget_indexes) for row in charged]
            )
            for row, verdict in zip(charged, result.verdicts, strict=True):
                if not verdict.fits:
                    budget = found.budgets[verdict.line_index]
                    described = budgets.describe(budget)
                    _deny(row, budgets.REASONS[verdict.reason], budgets.deny_message(budget, verdict.reason), described)
                    denied_by = denied_by or {**described, "reason": budgets.REASONS[verdict.reason]}
                    memo = (budget.pk, period, str(budget.amount))
                    if verdict.reason == ledger.OVER_LIMIT and memo not in _hard_alerted:
                        # Once per process, period and limit is enough to ask; the alert row makes it once in all.
                        _hard_alerted.add(memo)
                        budgets.alert_enqueue(budget_id=budget.pk, period=period, kind="hard")
            budgets.alerts_after(found.budgets, period, result.before, result.after)
        for row in fresh:
            if row.status == ACCEPTED and row.reservation is not None:
                finish_locked(row.reservation, actual=row.cost, status=Reservation.Status.SETTLED, now=now)
        newly_denied = [row for row in charged if row.status == DENIED]
        if newly_denied:
            _mark_denied(tenant, newly_denied)
        for row in rows:
            if row.outcome.idempotency_key in inserted:
                row.outcome.event_id = inserted[row.outcome.idempotency_key]
        _fill_duplicates(tenant, [row.outcome for row in rows if row.outcome.idempotency_key not in inserted])
        first = {row.outcome.idempotency_key: row.outcome for row in rows}
        for outcome in outcomes:  # a key repeated inside the batch answers with the id its first use got
            if outcome.reason == "duplicate_in_batch" and outcome.idempotency_key in first:
                outcome.event_id = first[outcome.idempotency_key].event_id
                outcome.cost = first[outcome.idempotency_key].cost
    return IngestResult(outcomes=outcomes, denied_by=denied_by)


def _reservation_problem(reservation: Reservation, cost: Decimal, now: datetime, claimed: set[str]) -> str:
    if str(reservation.uid) in claimed:
        return "The reservation is settled by an earlier event of this batch."
    if reservation.status != Reservation.Status.HELD:
        return f"The reservation is {reservation.status}."
    if reservation.expires_at <= now:
        return "The reservation has expired."
    if cost > reservation.amount:
        return f"The cost {cost} is more than the {reservation.amount} {reservation.currency} reserved."
    return ""


def _insert(
    tenant: Tenant, client: Any, rows: Sequence[_Row], now: datetime, found: budgets.BudgetSet
) -> dict[str, int]:
    """One INSERT … ON CONFLICT DO NOTHING for the whole batch; the keys stored now, with their ids."""
    if not rows:
        return {}
    currency = settings.BILLING_CURRENCY
    columns: list[list[Any]] = [[] for _ in _COLUMNS]
    for row in rows:
        event = row.event
        budget_ids = [found.budgets[i].pk for i in row.budget_indexes] if row.status == ACCEPTED else []
        values = (
            tenant.pk,
            getattr(client, "pk", None),
            getattr(event.member, "pk", None),
            row.model.pk,
            f"{row.model.provider}/{row.model.model_name}",
            event.input_tokens,
            event.output_tokens,
            event.context_tokens,
            json.dumps(list(event.tool_calls)),
            row.cost,
            currency,
            event.prompt_hash,
            event.idempotency_key,
            event.occurred_at,
            now,
            row.status,
            row.denied_reason,
            json.dumps(budget_ids),
            row.reservation.pk if row.reservation is not None and row.status == ACCEPTED else None,
        )
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT, columns)
        return {key: pk for pk, key in cursor.fetchall()}


def _mark_denied(tenant: Tenant, rows: Sequence[_Row]) -> None:
    ids = [row.outcome.idempotency_key for row in rows]
    reasons = [row.denied_reason for row in rows]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_TABLE} AS e SET status = 'denied', denied_reason = u.reason, budget_ids = '{{}}' "
            "FROM unnest(%s::text[], %s::text[]) AS u(key, reason) "
            "WHERE e.tenant_id = %s AND e.idempotency_key = u.key",
            [ids, reasons, tenant.pk],
        )


def _fill_duplicates(tenant: Tenant, outcomes: Sequence[UsageOutcome]) -> None:
    """Answer each duplicate with the stored event's id, status and cost (one query, only when there are some)."""
    pending = [o for o in outcomes if o.status in (ACCEPTED, DENIED)]
    if not pending:
        return
    stored = {
        key: (pk, status, cost)
        for pk, key, status, cost in UsageEvent.objects.for_tenant(tenant)
        .filter(idempotency_key__in=[o.idempotency_key for o in pending])
        .values_list("pk", "idempotency_key", "status", "cost")
    }
    for outcome in pending:
        pk, status, cost = stored.get(outcome.idempotency_key, (None, "", None))
        outcome.status, outcome.event_id, outcome.cost = DUPLICATE, pk, cost
        outcome.reason, outcome.message, outcome.budget = "duplicate", f"Stored before ({status}).", None
