"""Prompt-fraud screening per API client, and the review of the cases it raises.

Signals, each against the tenant's ``FraudPolicy`` and each quiet under its
minimum volume:

- **long contexts**: at least ``long_context_min_events`` calls in the last
  hour whose context (``context_tokens``, or the input when none is reported)
  reached ``long_context_tokens``;
- **retry storm**: the same prompt hash at least ``retry_storm_repeats`` times
  within any 60 seconds (a sliding minute, so a burst across a clock minute
  counts whole; looked at over the minutes since the last screening, at most 15);
- **tool outside the allowlist**: a tool named in the client's usage that the
  client may not run — not in the catalog, not allowlisted, or the client lacks
  ``tool.execute`` on it (asked of ``apps.access``, as the runtime API does);
- **cost spike**: the client's cost over the last hour above
  ``cost_spike_factor`` × the EWMA of its own hourly cost (the engine shared
  with alert rules), with at least ``cost_min_events`` calls.

A confirmed case can disable the client through ``apps.keys.services.apiclient_disable``
(its tokens are refused from the next check on). Every review step is audited.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apps.access.decisions import can
from apps.alerts import engine
from apps.alerts.models import ClientBaseline, FraudCase, FraudPolicy, Signal
from apps.alerts.services.evaluation import CATCH_UP_HOURS, hour_floor
from apps.alerts.services.raising import Raised, case_raise
from apps.alerts.usage import UsageSource, default_source
from apps.audit.services import Actor, record
from apps.catalog.models import Tool
from apps.keys.models import ApiClient
from apps.keys.services import apiclient_disable
from apps.tenants.models import Membership, Tenant

WINDOW = timedelta(hours=1)
STORM_LOOKBACK_MAX = timedelta(minutes=15)
CLIENT_EWMA_ALPHA = Decimal("0.3")
MAX_NOTE = 500


def policy_for(*, tenant: Tenant | int) -> FraudPolicy:
    """The tenant's policy, created with the defaults on first use."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    policy, _ = FraudPolicy.objects.get_or_create(tenant_id=tenant_id)
    return policy


def _fold_client_baselines(policy: FraudPolicy, *, until: datetime, usage: UsageSource) -> dict[int, ClientBaseline]:
    """Each client's hourly-cost EWMA, folded up to ``until``: one grouped query per hour not yet folded.

    The policy remembers how far it got (``costs_through``), so a tenant with no
    usage costs one query an hour, not a day's worth every five minutes. A
    client first seen in an hour starts its average there; an hour without its
    usage folds in as zero.
    """
    baselines = {b.client_id: b for b in ClientBaseline.objects.for_tenant(policy.tenant_id)}
    earliest = until - timedelta(hours=CATCH_UP_HOURS)
    hour = hour_floor(max(policy.costs_through or earliest, earliest))
    changed: set[int] = set()
    while hour + timedelta(hours=1) <= until:
        costs = usage.by_client(tenant_id=policy.tenant_id, start=hour, end=hour + timedelta(hours=1))
        for client_id in costs:
            if client_id not in baselines:
                baselines[client_id] = ClientBaseline(tenant_id=policy.tenant_id, client_id=client_id, cost=Decimal(0))
        for client_id, baseline in baselines.items():
            if baseline.through is not None and baseline.through > hour:
                continue
            value = costs[client_id].cost if client_id in costs else Decimal(0)
            baseline.cost = engine.ewma(baseline.cost if baseline.hours else None, value, CLIENT_EWMA_ALPHA)
            baseline.cost = engine.fit(baseline.cost).quantize(Decimal("0.000001"))
            baseline.hours += 1
            baseline.through = hour + timedelta(hours=1)
            changed.add(client_id)
        hour += timedelta(hours=1)
    for client_id in changed:
        baselines[client_id].save()
    policy.costs_through = max(hour, policy.costs_through or hour)
    return baselines


def _unlisted(client: ApiClient, names: dict[str, int], tools: dict[str, Tool]) -> dict[str, int]:
    found = {}
    for name, calls in names.items():
        tool = tools.get(name)
        if tool is None or not tool.allowlisted or not can(client, "tool.execute", tool, tenant=client.tenant):
            found[name] = calls
    return found


def tenant_screen(*, tenant_id: int, now: datetime | None = None, usage: UsageSource | None = None) -> list[Raised]:
    """Run every signal for one tenant; returns what was raised or counted. Skips if another run holds the policy."""
    now = now or timezone.now()
    usage = usage or default_source()
    policy_for(tenant=tenant_id)
    raised: list[Raised] = []
    with transaction.atomic():
        policy = (
            FraudPolicy.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant")
            .filter(tenant_id=tenant_id)
            .first()
        )
        if policy is None or not policy.enabled:
            return raised
        start = now - WINDOW
        clients = {c.pk: c for c in ApiClient.objects.for_tenant(tenant_id).select_related("tenant")}

        def open_case(signal: str, client_id: int, summary: str, evidence: dict[str, Any]) -> None:
            if client_id in clients:
                raised.append(
                    case_raise(
                        policy=policy, signal=signal, client=clients[client_id], summary=summary, evidence=evidence
                    )
                )

        long = usage.long_contexts(tenant_id=tenant_id, start=start, end=now, min_tokens=policy.long_context_tokens)
        for client_id, (events, largest) in long.items():
            if events >= policy.long_context_min_events:
                open_case(
                    Signal.LONG_CONTEXT,
                    client_id,
                    f"{events} calls with contexts of {policy.long_context_tokens:,}+ tokens in an hour",
                    {"events": events, "largest_context_tokens": largest, "limit": policy.long_context_tokens},
                )

        storm_start = max(policy.last_evaluated_at or now - STORM_LOOKBACK_MAX, now - STORM_LOOKBACK_MAX)
        storm_start = storm_start.replace(second=0, microsecond=0)
        storms = usage.repeated_prompts(
            tenant_id=tenant_id, start=storm_start, end=now, min_repeats=policy.retry_storm_repeats
        )
        for client_id, storm in storms.items():
            open_case(
                Signal.RETRY_STORM,
                client_id,
                f"The same prompt {storm.count} times within one minute",
                {"prompt_hash": storm.prompt_hash[:16], "count": storm.count, "minute": storm.minute.isoformat()},
            )

        used = usage.tool_names(tenant_id=tenant_id, start=start, end=now)
        if used:
            names = {name for per_client in used.values() for name in per_client}
            tools = {t.name: t for t in Tool.objects.for_tenant(tenant_id).filter(name__in=names)}
            for client_id, per_client in used.items():
                if client_id not in clients:
                    continue
                outside = _unlisted(clients[client_id], per_client, tools)
                if sum(outside.values()) >= policy.unlisted_tool_min_calls:
                    open_case(
                        Signal.UNLISTED_TOOL,
                        client_id,
                        f"Tool calls outside the client's allowlist: {', '.join(sorted(outside))[:200]}",
                        {"tools": dict(sorted(outside.items())[:20])},
                    )

        baselines = _fold_client_baselines(policy, until=hour_floor(start), usage=usage)
        for client_id, totals in usage.by_client(tenant_id=tenant_id, start=start, end=now).items():
            baseline = baselines.get(client_id)
            verdict = engine.against_baseline(
                engine.Measurement(totals.cost, totals.events),
                baseline=baseline.cost if baseline and baseline.hours else None,
                hours=baseline.hours if baseline else 0,
                factor=policy.cost_spike_factor,
                min_volume=policy.cost_min_events,
            )
            if verdict.fire:
                open_case(
                    Signal.COST_SPIKE,
                    client_id,
                    f"Cost {totals.cost.normalize():f} in the last hour, over "
                    f"{policy.cost_spike_factor.normalize():f}× its usual hourly cost",
                    {
                        "cost": str(totals.cost),
                        "baseline": str(baseline.cost) if baseline else None,
                        "events": totals.events,
                    },
                )
        policy.last_evaluated_at = now
        policy.save(update_fields=["last_evaluated_at", "costs_through"])
    return raised


# --- review --------------------------------------------------------------------------------------


def _actor(actor: Membership) -> Actor:
    return Actor.for_user(actor.user)


def _locked_open(case: FraudCase) -> FraudCase:
    locked = FraudCase.objects.for_tenant(case.tenant_id).select_for_update().get(pk=case.pk)
    if locked.status != FraudCase.Status.OPEN:
        raise ValidationError(f"This case was already {locked.get_status_display().lower()}.")
    return locked


@transaction.atomic
def case_assign(*, case: FraudCase, assignee: Membership | None, actor: Membership) -> FraudCase:
    """Give an open case to a member who can review it (holds apiclient.manage), or to nobody."""
    locked = _locked_open(case)
    if assignee is not None:
        if assignee.tenant_id != locked.tenant_id or assignee.status != Membership.Status.ACTIVE:
            raise ValidationError({"assignee": "Choose an active member of this tenant."})
        if not can(assignee, "apiclient.manage", tenant=assignee.tenant, for_reading=True):
            raise ValidationError(
                {"assignee": f"{assignee.user} cannot open the fraud queue (needs apiclient.manage)."}
            )
    locked.assignee = assignee
    locked.save(update_fields=["assignee"])
    record(
        "fraud_case.assign",
        tenant=locked.tenant_id,
        actor=_actor(actor),
        target=locked,
        metadata={"assignee": assignee.user_id if assignee else None},
    )
    return locked


@transaction.atomic
def case_dismiss(*, case: FraudCase, actor: Membership, note: str = "") -> FraudCase:
    """Close an open case as a false alarm; a later signal opens a new case."""
    locked = _locked_open(case)
    locked.status = FraudCase.Status.DISMISSED
    locked.decided_at, locked.decided_by, locked.decision_note = timezone.now(), actor, note.strip()[:MAX_NOTE]
    locked.save(update_fields=["status", "decided_at", "decided_by", "decision_note"])
    record(
        "fraud_case.dismiss",
        tenant=locked.tenant_id,
        actor=_actor(actor),
        target=locked,
        metadata={"signal": locked.signal},
    )
    return locked


@transaction.atomic
def case_confirm(*, case: FraudCase, actor: Membership, note: str = "", disable_client: bool = False) -> FraudCase:
    """Confirm an open case; with ``disable_client`` the API client is disabled in the same transaction."""
    locked = _locked_open(case)
    locked.status = FraudCase.Status.CONFIRMED
    locked.decided_at, locked.decided_by, locked.decision_note = timezone.now(), actor, note.strip()[:MAX_NOTE]
    fields = ["status", "decided_at", "decided_by", "decision_note"]
    if disable_client:
        if locked.client is None:
            raise ValidationError("The API client of this case no longer exists.")
        apiclient_disable(client=locked.client, actor=actor, reason=f"fraud case #{locked.pk} confirmed")
        locked.client_disabled = True
        fields.append("client_disabled")
    locked.save(update_fields=fields)
    record(
        "fraud_case.confirm",
        tenant=locked.tenant_id,
        actor=_actor(actor),
        target=locked,
        metadata={"signal": locked.signal, "client_disabled": locked.client_disabled},
    )
    return locked
