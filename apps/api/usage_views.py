"""Metering and budget endpoints of /api/v1/: usage ingest, the budget guard, and reservations.

Thin callers of ``apps.billing`` (metering, budgets, reservations), declared
with ``api_view`` like every endpoint (permission ``usage.report``, scopes
``usage`` and ``budget``). The tenant and the reporting client are the
token's; a member named as subject is looked up in that tenant only, and a
reservation id of another tenant (or of another client of the tenant) is
answered exactly like one that does not exist (404). When the budget counters (Redis) do not answer, the answer is a
503 to retry with the same idempotency keys: money is never let through
unchecked.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.api import usage_schemas as schemas
from apps.api.endpoint import ApiCall, api_view
from apps.api.problems import ApiProblem
from apps.api.schemas import ClientSubject, MemberSubject, Reason
from apps.api.views import _subject
from apps.billing import budgets, ledger, metering, reservations
from apps.billing.models import Budget, Reservation

PERMISSION = "usage.report"
UNAVAILABLE = ApiProblem(
    503,
    "budget-unavailable",
    "The budget counters are unavailable; nothing was stored. Retry with the same idempotency keys.",
    headers={"Retry-After": "5"},
)


def _member(call: ApiCall, ref: ClientSubject | MemberSubject) -> tuple[Any | None, bool]:
    """(the member the call was for or None, whether a named member is missing from the tenant)."""
    if isinstance(ref, ClientSubject):
        return None, False
    if ref.email is not None and "\x00" in ref.email:  # PostgreSQL text cannot hold NUL: no such member
        return None, True
    found = _subject(call, ref)
    return found, found is None


def _ref(described: dict[str, Any] | None) -> schemas.BudgetRef | None:
    return schemas.BudgetRef(**described) if described else None


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.6f}"


@api_view(
    PERMISSION,
    scope="usage",
    method="POST",
    path="usage",
    body=schemas.UsageRequest,
    response=schemas.UsageResponse,
    summary="Report model usage: one event or a batch of up to 1,000, each stored once per idempotency key.",
    problems=(503,),
)
def usage_report(call: ApiCall, body: schemas.UsageRequest) -> schemas.UsageResponse:
    """Each event is priced at the catalog's prices of its model and counted against the budgets that apply
    (the tenant's, the role's, the client's). Per event: `accepted`, `duplicate` (the key was stored before;
    the original's id), `denied` (stored for the record, not counted: a budget's hard limit or throttle, or a
    model/tool that requires preauthorisation without a held reservation) or `rejected` (not stored: unknown
    model, member or reservation). An event naming a held reservation settles it with its cost.
    """
    members: dict[Any, tuple[Any | None, bool]] = {}
    events = []
    for item in body.events():
        ref = item.subject
        key = ref.model_dump_json()
        if key not in members:
            members[key] = _member(call, ref)
        member, missing = members[key]
        events.append(
            metering.UsageIn(
                idempotency_key=item.idempotency_key,
                model=item.model,
                input_tokens=item.input_tokens,
                output_tokens=item.output_tokens,
                context_tokens=item.context_tokens,
                tool_calls=tuple(item.tool_calls),
                occurred_at=item.timestamp,
                member=member,
                member_missing=missing,
                prompt_hash=item.prompt_hash or "",
                reservation_id=item.reservation_id,
            )
        )
    try:
        result = metering.usage_ingest(tenant=call.tenant, client=call.client, events=events)
    except ledger.LedgerUnavailableError:
        raise UNAVAILABLE from None
    counts = dict.fromkeys((metering.ACCEPTED, metering.DUPLICATE, metering.DENIED, metering.REJECTED), 0)
    results = []
    for outcome in result.outcomes:
        counts[outcome.status] += 1
        results.append(
            schemas.UsageEventResult(
                idempotency_key=outcome.idempotency_key,
                status=outcome.status,  # type: ignore[arg-type]
                event_id=outcome.event_id,
                cost=_money(outcome.cost),
                reason=outcome.reason or None,
                message=outcome.message or None,
                budget=_ref(outcome.budget),
            )
        )
    return schemas.UsageResponse(
        allowed=counts[metering.DENIED] == 0,
        currency=settings.BILLING_CURRENCY,
        accepted=counts[metering.ACCEPTED],
        duplicates=counts[metering.DUPLICATE],
        denied=counts[metering.DENIED],
        rejected=counts[metering.REJECTED],
        denied_by=_ref(result.denied_by),
        results=results,
    )


def _status(budget: Budget, standing: ledger.Standing) -> schemas.BudgetStatus:
    spent, reserved = ledger.money(standing.spent), ledger.money(standing.reserved)
    return schemas.BudgetStatus(
        id=budget.pk,
        name=budget.name,
        scope=budget.scope,  # type: ignore[arg-type]
        limit=f"{budget.amount:.2f}",
        spent=f"{spent:.6f}",
        reserved=f"{reserved:.6f}",
        remaining=f"{max(Decimal(0), budget.amount - spent - reserved):.6f}",
    )


@api_view(
    PERMISSION,
    scope="budget",
    method="POST",
    path="guard",
    body=schemas.GuardRequest,
    response=schemas.GuardResponse,
    summary="Before a call: may it go ahead (model, tools, preauthorisation, budgets and throttles)?",
    problems=(503,),
)
def guard(call: ApiCall, body: schemas.GuardRequest) -> schemas.GuardResponse:
    """Checks, without spending: the model exists and is enabled, each tool exists and is allowlisted, a model or
    tool that requires preauthorisation comes with a held reservation covering the estimate, and the estimate
    fits every budget that applies (hard limit, and the per-minute throttle). A denial names the budget.
    """
    reasons: list[Reason] = []
    member, missing = _member(call, body.subject)
    if missing:
        reasons.append(Reason(code="subject_not_found", message="No such member in this tenant."))
    catalog = metering.catalog_for(tenant_id=call.tenant.pk, tool_names=body.tools)
    model = catalog.model(body.model)
    if model is None:
        reasons.append(Reason(code="model_not_found", message="No such model in this tenant.", path="model"))
    elif not model.enabled:
        reasons.append(Reason(code="model_disabled", message="The model is not enabled.", path="model"))
    for index, name in enumerate(body.tools):
        tool = catalog.tools.get(name)
        if tool is None:
            reasons.append(
                Reason(code="tool_not_found", message="No such tool in this tenant.", path=f"tools[{index}]")
            )
        elif not tool.allowlisted:
            reasons.append(
                Reason(code="tool_not_allowlisted", message="The tool is not allowlisted.", path=f"tools[{index}]")
            )
    if body.estimated_cost is not None:
        estimate = body.estimated_cost
    elif model is not None:
        estimate = metering.price(
            model, input_tokens=body.estimated_input_tokens, output_tokens=body.estimated_output_tokens
        )
    else:
        estimate = Decimal(0)
    reservation = None
    if body.reservation_id:
        reservation = reservations.reservation_get(
            tenant=call.tenant, uid=body.reservation_id, client_id=call.client.pk
        )
        problem = _reservation_problem(reservation, estimate)
        if problem:
            reasons.append(Reason(code="reservation_unusable", message=problem, path="reservation_id"))
            reservation = None
    needed = metering.preauth_needed(catalog, model, body.tools)
    if needed and reservation is None:
        reasons.append(
            Reason(
                code="preauthorisation_required",
                message=f"Requires preauthorisation ({', '.join(needed)}): reserve first and name the reservation.",
            )
        )
    found = budgets.budget_set(tenant_id=call.tenant.pk)
    indexes = found.applying(budgets.payer_for(client=call.client, member=member))
    held, lines = found.subset(indexes)
    denied_by = None
    statuses: list[schemas.BudgetStatus] = []
    if lines:
        # Money already held by the reservation is not asked for twice.
        amount = 0 if reservation is not None else ledger.micros(estimate)
        try:
            verdict, standings = ledger.check(lines, budgets.period_of(_now()), amount, range(len(lines)))
        except ledger.LedgerUnavailableError:
            raise UNAVAILABLE from None
        statuses = [_status(b, s) for b, s in zip(held, standings, strict=True)]
        if not verdict.fits:
            budget = held[verdict.line_index]
            code = budgets.REASONS[verdict.reason]
            denied_by = schemas.BudgetRef(**budgets.describe(budget), reason=code)
            reasons.append(Reason(code=code, message=budgets.deny_message(budget, verdict.reason)))
    return schemas.GuardResponse(
        allowed=not reasons,
        reasons=reasons,
        estimated_cost=f"{estimate:.6f}",
        currency=settings.BILLING_CURRENCY,
        denied_by=denied_by,
        budgets=statuses,
    )


def _now() -> Any:
    return timezone.now()


def _reservation_problem(reservation: Reservation | None, estimate: Decimal) -> str:
    if reservation is None:
        return "No such reservation in this tenant."
    if reservation.status != Reservation.Status.HELD:
        return f"The reservation is {reservation.status}."
    if reservation.expires_at <= _now():
        return "The reservation has expired."
    if estimate > reservation.amount:
        return f"The estimate is more than the {reservation.amount} {reservation.currency} reserved."
    return ""


def _reservation(row: Reservation) -> schemas.ReservationResponse:
    status = row.status
    if status == Reservation.Status.HELD and row.expires_at <= _now():
        status = Reservation.Status.EXPIRED
    return schemas.ReservationResponse(
        reservation_id=str(row.uid),
        status=status,  # type: ignore[arg-type]
        amount=f"{row.amount:.6f}",
        actual=_money(row.actual),
        currency=row.currency,
        expires_at=row.expires_at,
        budgets=list(row.budget_ids),
    )


def _refused(error: reservations.ReservationError) -> ApiProblem:
    return ApiProblem(error.status, error.slug, str(error))


@api_view(
    PERMISSION,
    scope="budget",
    method="POST",
    path="budget/reservations",
    body=schemas.ReservationRequest,
    response=schemas.ReservationResponse,
    summary="Reserve an estimated cost before a high-risk call (preauthorisation).",
    problems=(404, 409, 503),
)
def reservation_create(call: ApiCall, body: schemas.ReservationRequest) -> schemas.ReservationResponse:
    """Holds the amount on every budget that applies until it is settled, released or expires
    (`ttl_seconds`, capped by the installation). Concurrent reservations never together exceed what is left:
    a refusal is a 409 `budget-exceeded` naming the budget.
    """
    member, missing = _member(call, body.subject)
    if missing:
        raise ApiProblem(404, "subject-not-found", "The subject: no such member in this tenant.")
    try:
        row = reservations.reservation_create(
            tenant=call.tenant,
            client=call.client,
            member=member,
            amount=body.estimated_cost,
            model_name=body.model or "",
            tool_names=body.tools,
            ttl_seconds=body.ttl_seconds,
        )
    except reservations.BudgetDeniedError as denied:
        raise ApiProblem(
            409,
            "budget-exceeded",
            str(denied),
            extra={"budget": {**budgets.describe(denied.budget), "reason": denied.code}},
        ) from None
    except ledger.LedgerUnavailableError:
        raise UNAVAILABLE from None
    return _reservation(row)


def _reservation_id(call: ApiCall) -> str:
    match = call.request.resolver_match
    return str(match.kwargs.get("reservation_id", "")) if match is not None else ""


@api_view(
    PERMISSION,
    scope="budget",
    method="POST",
    path="budget/reservations/{reservation_id}/settle",
    body=schemas.SettleRequest,
    response=schemas.ReservationResponse,
    summary="Settle a reservation with the actual cost (at most the amount reserved).",
    problems=(404, 409, 503),
)
def reservation_settle(call: ApiCall, body: schemas.SettleRequest) -> schemas.ReservationResponse:
    """Counts the actual cost as spent and frees the rest. 404 for an id not of this tenant; 409 when the
    reservation is no longer held (settled, released, expired); 422 when the cost is over the amount reserved.
    """
    try:
        row = reservations.reservation_settle(
            tenant=call.tenant, uid=_reservation_id(call), actual=body.actual_cost, client_id=call.client.pk
        )
    except reservations.ReservationError as error:
        raise _refused(error) from None
    except ledger.LedgerUnavailableError:
        raise UNAVAILABLE from None
    return _reservation(row)


@api_view(
    PERMISSION,
    scope="budget",
    method="POST",
    path="budget/reservations/{reservation_id}/release",
    response=schemas.ReservationResponse,
    summary="Release a reservation without spending.",
    problems=(404, 409, 503),
)
def reservation_release(call: ApiCall, body: None) -> schemas.ReservationResponse:
    """Frees the whole amount. 404 for an id not of this tenant; 409 when it is no longer held."""
    try:
        row = reservations.reservation_release(tenant=call.tenant, uid=_reservation_id(call), client_id=call.client.pk)
    except reservations.ReservationError as error:
        raise _refused(error) from None
    except ledger.LedgerUnavailableError:
        raise UNAVAILABLE from None
    return _reservation(row)
