"""Request and response models of the metering and budget endpoints (usage, guard, reservations).

Money is a decimal (a JSON number or a decimal string, at most six places) in
the installation's currency; answers carry it as a decimal string so nothing is
lost to binary floats. Timestamps must carry a zone; an event outside the last 35
days (Stripe's window for meter events) or more than five minutes ahead is
rejected on its own (the rest of the batch is stored).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, Discriminator, Field, RootModel, Tag, WithJsonSchema

from apps.api.schemas import ClientSubject, Reason, Strict, Subject, _not_a_bool
from apps.billing.metering import MAX_BATCH, QUANTUM

MAX_TOOLS = 100

Tokens = Annotated[int, Field(ge=0, le=10**9), BeforeValidator(_not_a_bool)]
# Canonical decimals (no leading zeros, at most nine digits before the point and six after): the
# validator uses the same patterns as the schema, so the two always agree.
MONEY_PATTERN = r"^(0|[1-9][0-9]{0,8})(\.[0-9]{1,6})?$"
POSITIVE_MONEY_PATTERN = (
    r"^([1-9][0-9]{0,8}(\.[0-9]{1,6})?"
    r"|0\.([1-9][0-9]{0,5}|0[1-9][0-9]{0,4}|00[1-9][0-9]{0,3}|000[1-9][0-9]{0,2}|0000[1-9][0-9]?|00000[1-9]))$"
)
MONEY_MAX = 10**9


def _money_parser(pattern: str, rounding: str) -> Any:
    compiled = re.compile(pattern)

    def parse(value: Any) -> Decimal:
        """A decimal string as written (at most six places), or a JSON number rounded to six places."""
        if isinstance(value, bool):
            raise ValueError("must be a number or a decimal string, not a boolean")
        if isinstance(value, str):
            if not compiled.fullmatch(value):
                raise ValueError('must be a decimal string with at most six places, e.g. "12.50"')
            return Decimal(value)
        if isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError("must be a finite number")
            exact = Decimal(str(value))
            if not 0 <= exact <= MONEY_MAX:  # out of range: the bounds below say so (and no quantize overflow)
                return exact
            return exact.quantize(QUANTUM, rounding=rounding)
        raise ValueError("must be a number or a decimal string")

    return parse


def _money_schema(pattern: str, *, positive: bool) -> dict[str, Any]:
    number: dict[str, Any] = {"type": "number", "maximum": MONEY_MAX}
    number["exclusiveMinimum" if positive else "minimum"] = 0
    return {
        "anyOf": [number, {"type": "string", "pattern": pattern}],
        "description": "Money in the installation's currency: a number, or a decimal string (at most six places).",
    }


Money = Annotated[
    Decimal,
    BeforeValidator(_money_parser(MONEY_PATTERN, ROUND_HALF_UP)),
    Field(ge=0, le=MONEY_MAX),
    WithJsonSchema(_money_schema(MONEY_PATTERN, positive=False)),
]
# Rounded up: a reservation never holds less than was asked for.
PositiveMoney = Annotated[
    Decimal,
    BeforeValidator(_money_parser(POSITIVE_MONEY_PATTERN, ROUND_UP)),
    Field(gt=0, le=MONEY_MAX),
    WithJsonSchema(_money_schema(POSITIVE_MONEY_PATTERN, positive=True)),
]
ToolName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$", description="A tool's name in the catalog.")]
ModelName = Annotated[
    str, Field(min_length=1, max_length=140, description='"provider/model_name", or the model name when unique.')
]
ReservationId = Annotated[str, Field(min_length=1, max_length=64, description="From POST /budget/reservations.")]
IdempotencyKey = Annotated[
    str,
    Field(
        min_length=1,
        max_length=255,
        pattern=r"^[\x21-\x7e]+$",
        description="Printable ASCII; the event is stored once per key in the tenant.",
    ),
]


def _client_subject() -> ClientSubject:
    return ClientSubject(type="client")


class UsageEventIn(Strict):
    """One model call, as it happened."""

    idempotency_key: IdempotencyKey
    model: ModelName
    input_tokens: Tokens
    output_tokens: Tokens
    context_tokens: Tokens = 0
    tool_calls: Annotated[list[ToolName], Field(max_length=MAX_TOOLS)] = Field(default_factory=list)
    subject: Subject = Field(
        default_factory=_client_subject, description="Whom the call was made for (default: the calling client)."
    )
    timestamp: Annotated[AwareDatetime, Field(strict=True)] = Field(
        description="When the call was made (RFC 3339 with a zone); within the last 35 days and at most "
        "five minutes ahead, else the event is rejected."
    )
    prompt_hash: Annotated[str, Field(pattern=r"^[A-Za-z0-9:_-]{1,128}$")] | None = None
    reservation_id: ReservationId | None = None


class UsageBatchIn(Strict):
    """Up to 1,000 events, stored and answered in order."""

    events: Annotated[list[UsageEventIn], Field(min_length=1, max_length=MAX_BATCH)]


def _shape(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "events" in value else "event"


class UsageRequest(
    RootModel[
        Annotated[Annotated[UsageEventIn, Tag("event")] | Annotated[UsageBatchIn, Tag("batch")], Discriminator(_shape)]
    ]
):
    """One event, or ``{"events": [...]}``."""

    def events(self) -> list[UsageEventIn]:
        root = self.root
        return list(root.events) if isinstance(root, UsageBatchIn) else [root]


class BudgetRef(BaseModel):
    id: int
    name: str
    scope: Literal["tenant", "role", "client"]
    limit: str = Field(description="The monthly hard limit (decimal string).")
    reason: str | None = Field(default=None, description="budget_exceeded or budget_throttled, when it refused.")


class UsageEventResult(BaseModel):
    idempotency_key: str
    status: Literal["accepted", "duplicate", "denied", "rejected"]
    event_id: int | None = None
    cost: str | None = Field(default=None, description="Decimal string in `currency`.")
    reason: str | None = None
    message: str | None = None
    budget: BudgetRef | None = None


class UsageResponse(BaseModel):
    allowed: bool = Field(description="False when a budget, throttle or preauthorisation refused an event.")
    currency: str
    accepted: int
    duplicates: int
    denied: int
    rejected: int
    denied_by: BudgetRef | None = None
    results: list[UsageEventResult]


class GuardRequest(Strict):
    """A call about to be made: may it go ahead, budget-wise?"""

    subject: Subject = Field(default_factory=_client_subject)
    model: ModelName
    estimated_input_tokens: Tokens = 0
    estimated_output_tokens: Tokens = 0
    estimated_cost: Money | None = Field(default=None, description="Overrides the estimate from the tokens.")
    tools: Annotated[list[ToolName], Field(max_length=MAX_TOOLS)] = Field(default_factory=list)
    reservation_id: ReservationId | None = None


class BudgetStatus(BaseModel):
    id: int
    name: str
    scope: Literal["tenant", "role", "client"]
    limit: str
    spent: str
    reserved: str
    remaining: str


class GuardResponse(BaseModel):
    allowed: bool
    reasons: list[Reason]
    estimated_cost: str
    currency: str
    denied_by: BudgetRef | None = None
    budgets: list[BudgetStatus] = Field(description="The budgets this call counts against, this month.")


class ReservationRequest(Strict):
    subject: Subject = Field(default_factory=_client_subject)
    estimated_cost: PositiveMoney = Field(description="The amount to hold (more than zero; rounded up).")
    model: ModelName | None = None
    tools: Annotated[list[ToolName], Field(max_length=MAX_TOOLS)] = Field(default_factory=list)
    ttl_seconds: Annotated[int, Field(ge=1, le=86_400), BeforeValidator(_not_a_bool)] | None = Field(
        default=None, description="How long to hold; capped by the installation's maximum."
    )


class SettleRequest(Strict):
    actual_cost: Money = Field(description="What the call cost, at most the amount reserved.")


class ReservationResponse(BaseModel):
    reservation_id: str
    status: Literal["held", "settled", "released", "expired"]
    amount: str
    actual: str | None = None
    currency: str
    expires_at: datetime
    budgets: list[int] = Field(description="Ids of the budgets the money is held on.")
