"""Configuration writes: alert rules, webhook endpoints and the fraud policy (audited).

Validation failures raise ``ValidationError`` keyed by field, so the forms put
each message next to its field. A webhook URL is checked twice over, with the
same code as tool-call egress: ``apps.guardrails.egress.parse_url`` (two URL
parsers must agree on the host and port — no parser differential) and
``apps.core.netfetch.resolve`` under the webhook policy (https on an allowed
port; no loopback, private, link-local or reserved address unless the
installation allows it). Delivery resolves and checks again, so a DNS record
changed after saving does not get through either.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.alerts import conf, crypto
from apps.alerts.models import AlertRule, FraudPolicy, Metric, WebhookEndpoint, display_url
from apps.audit.services import Actor, record
from apps.core.netfetch import FetchError, resolve
from apps.guardrails.egress import parse_url
from apps.tenants.models import Membership, Tenant

RULE_FIELDS = ("name", "metric", "mode", "threshold", "factor", "alpha", "min_volume", "email_recipients", "enabled")
ENDPOINT_FIELDS = ("name", "url", "enabled", "send_alerts", "send_fraud")
POLICY_FIELDS = (
    "enabled",
    "long_context_tokens",
    "long_context_min_events",
    "retry_storm_repeats",
    "unlisted_tool_min_calls",
    "cost_spike_factor",
    "cost_min_events",
    "email_recipients",
)
MAX_RECIPIENTS = 10
MAX_URL_LENGTH = 500
# Every rule costs a few aggregate queries every 5 minutes and every endpoint one request per alert:
# bounded per tenant so that one tenant cannot make the scheduler's work grow without limit.
MAX_RULES = 50
MAX_ENDPOINTS = 10


def _actor(actor: Membership | None) -> Actor:
    return Actor.for_user(actor.user) if actor is not None else Actor.from_context()


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, (list, tuple)):
        return list(value)
    return value


def _snapshot(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    values = {f: _json(getattr(obj, f)) for f in fields}
    if "url" in values:
        # A webhook URL's path can be the receiver's own secret (Slack, Teams): the log keeps scheme and
        # host, and a fingerprint so that a change of path still shows as a change.
        values["url"] = display_url(obj.url)
        values["url_fingerprint"] = hashlib.sha256(obj.url.encode()).hexdigest()[:12]
    return values


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}


def _save_named(obj: Any, message: str) -> None:
    try:
        with transaction.atomic():
            obj.save()
    except IntegrityError as exc:
        if "unique_name" not in str(exc):
            raise
        raise ValidationError({"name": message}) from None


# --- rules ---------------------------------------------------------------------------------------


def validate_rule(data: dict[str, Any]) -> None:
    """Field rules of an alert rule; raises ValidationError by field."""
    errors: dict[str, list[str]] = {}
    threshold = data.get("threshold")
    if data.get("metric") not in Metric.values:
        errors.setdefault("metric", []).append("Choose one of the listed metrics.")
    if threshold is not None and threshold <= 0:
        errors.setdefault("threshold", []).append("The threshold must be greater than zero.")
    if data.get("metric") == Metric.TOOL_ERROR_RATE and threshold is not None and threshold >= 100:
        # A rate is at most 100 % and must exceed the threshold: such a rule could never fire.
        errors.setdefault("threshold", []).append("The tool error rate is a percentage: use a threshold below 100.")
    if data.get("mode") == AlertRule.Mode.THRESHOLD and threshold is None:
        errors.setdefault("threshold", []).append("A fixed-threshold rule needs a threshold.")
    if data.get("mode") not in AlertRule.Mode.values:
        errors.setdefault("mode", []).append("Choose a baseline or a fixed threshold.")
    if data.get("factor") is not None and data["factor"] <= 1:
        errors.setdefault("factor", []).append("The factor must be greater than 1 (1 would fire on any increase).")
    alpha = data.get("alpha")
    if alpha is not None and not (0 < alpha <= 1):
        errors.setdefault("alpha", []).append("Smoothing must be above 0 and at most 1.")
    if data.get("min_volume") is not None and data["min_volume"] < 1:
        errors.setdefault("min_volume", []).append("The minimum volume must be at least 1.")
    if len(data.get("email_recipients") or []) > MAX_RECIPIENTS:
        errors.setdefault("email_recipients", []).append(f"At most {MAX_RECIPIENTS} addresses.")
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def rule_create(*, tenant: Tenant, actor: Membership | None, **data: Any) -> AlertRule:
    data = {k: v for k, v in data.items() if k in RULE_FIELDS}
    validate_rule({"mode": AlertRule.Mode.BASELINE, **data})
    if AlertRule.objects.for_tenant(tenant).count() >= MAX_RULES:
        raise ValidationError(f"A tenant can have at most {MAX_RULES} alert rules; delete one first.")
    rule = AlertRule(tenant=tenant, **data)
    _save_named(rule, "Another rule already has this name.")
    record("alert_rule.create", tenant=tenant, actor=_actor(actor), target=rule, metadata=_snapshot(rule, RULE_FIELDS))
    return rule


@transaction.atomic
def rule_update(*, rule: AlertRule, data: dict[str, Any], actor: Membership | None) -> AlertRule:
    """Change a rule; a new metric, mode or smoothing forgets the learned baseline (it described another series)."""
    unknown = set(data) - set(RULE_FIELDS)
    if unknown:
        raise TypeError(f"cannot update {sorted(unknown)}")
    locked = AlertRule.objects.for_tenant(rule.tenant_id).select_for_update().get(pk=rule.pk)
    before = _snapshot(locked, RULE_FIELDS)
    validate_rule({**{f: getattr(locked, f) for f in RULE_FIELDS}, **data})
    for field, value in data.items():
        setattr(locked, field, value)
    if any(before[f] != _json(getattr(locked, f)) for f in ("metric", "mode", "alpha")):
        locked.baseline, locked.baseline_hours, locked.baseline_through = None, 0, None
    _save_named(locked, "Another rule already has this name.")
    changes = _changes(before, _snapshot(locked, RULE_FIELDS))
    if changes:
        record("alert_rule.update", tenant=locked.tenant_id, actor=_actor(actor), target=locked, metadata=changes)
    return locked


@transaction.atomic
def rule_delete(*, rule: AlertRule, actor: Membership | None) -> None:
    """Delete a rule; its alerts stay (their rule link becomes empty)."""
    record(
        "alert_rule.delete",
        tenant=rule.tenant_id,
        actor=_actor(actor),
        target=rule,
        metadata=_snapshot(rule, RULE_FIELDS),
    )
    rule.delete()


# --- webhook endpoints ---------------------------------------------------------------------------


def webhook_url_problem(url: str) -> str | None:
    """Why alerts may not be sent to ``url`` (a sentence), or None."""
    if len(url) > MAX_URL_LENGTH:
        return f"Use at most {MAX_URL_LENGTH} characters."
    parsed = parse_url(url)
    if parsed.problems:
        return parsed.problems[0].message[:1].upper() + parsed.problems[0].message[1:] + "."
    try:
        resolve(url, policy=conf.webhook_policy())
    except FetchError as exc:
        return f"The URL {exc.message}."
    return None


def _check_url(url: str) -> None:
    problem = webhook_url_problem(url)
    if problem:
        raise ValidationError({"url": problem})


@dataclass(frozen=True, slots=True)
class EndpointWithSecret:
    """An endpoint and its new signing secret: the only time the plain secret exists outside the sender."""

    endpoint: WebhookEndpoint
    secret: str


@transaction.atomic
def endpoint_create(*, tenant: Tenant, actor: Membership | None, **data: Any) -> EndpointWithSecret:
    data = {k: v for k, v in data.items() if k in ENDPOINT_FIELDS}
    data["url"] = data.get("url", "").strip()
    _check_url(data["url"])
    if WebhookEndpoint.objects.for_tenant(tenant).count() >= MAX_ENDPOINTS:
        raise ValidationError(f"A tenant can have at most {MAX_ENDPOINTS} webhook endpoints; delete one first.")
    secret = crypto.new_secret()
    endpoint = WebhookEndpoint(tenant=tenant, secret_encrypted=crypto.encrypt(secret), secret_hint=secret[-4:], **data)
    _save_named(endpoint, "Another endpoint already has this name.")
    record(
        "alert_endpoint.create",
        tenant=tenant,
        actor=_actor(actor),
        target=endpoint,
        metadata={**_snapshot(endpoint, ENDPOINT_FIELDS), "secret": f"…{endpoint.secret_hint}"},
    )
    return EndpointWithSecret(endpoint, secret)


@transaction.atomic
def endpoint_update(*, endpoint: WebhookEndpoint, data: dict[str, Any], actor: Membership | None) -> WebhookEndpoint:
    unknown = set(data) - set(ENDPOINT_FIELDS)
    if unknown:
        raise TypeError(f"cannot update {sorted(unknown)}")
    locked = WebhookEndpoint.objects.for_tenant(endpoint.tenant_id).select_for_update().get(pk=endpoint.pk)
    before = _snapshot(locked, ENDPOINT_FIELDS)
    if "url" in data:
        data["url"] = data["url"].strip()
        if data["url"] != locked.url:
            _check_url(data["url"])
    for field, value in data.items():
        setattr(locked, field, value)
    _save_named(locked, "Another endpoint already has this name.")
    changes = _changes(before, _snapshot(locked, ENDPOINT_FIELDS))
    if changes:
        record("alert_endpoint.update", tenant=locked.tenant_id, actor=_actor(actor), target=locked, metadata=changes)
    return locked


@transaction.atomic
def endpoint_rotate_secret(*, endpoint: WebhookEndpoint, actor: Membership | None) -> EndpointWithSecret:
    """A new signing secret; the old one keeps signing too (a second v1) for the overlap, then stops."""
    locked = WebhookEndpoint.objects.for_tenant(endpoint.tenant_id).select_for_update().get(pk=endpoint.pk)
    secret = crypto.new_secret()
    now = timezone.now()
    overlap = conf.secret_overlap_hours()
    locked.previous_secret_encrypted = locked.secret_encrypted if overlap else ""
    locked.previous_secret_until = now + timedelta(hours=overlap) if overlap else None
    old_hint = locked.secret_hint
    locked.secret_encrypted, locked.secret_hint, locked.secret_rotated_at = crypto.encrypt(secret), secret[-4:], now
    locked.save()
    record(
        "alert_endpoint.secret_rotate",
        tenant=locked.tenant_id,
        actor=_actor(actor),
        target=locked,
        metadata={"old": f"…{old_hint}", "new": f"…{locked.secret_hint}", "overlap_hours": overlap},
    )
    return EndpointWithSecret(locked, secret)


@transaction.atomic
def endpoint_delete(*, endpoint: WebhookEndpoint, actor: Membership | None) -> None:
    """Delete an endpoint; its delivery log stays, and deliveries still waiting for it fail at their next attempt."""
    record(
        "alert_endpoint.delete",
        tenant=endpoint.tenant_id,
        actor=_actor(actor),
        target=endpoint,
        metadata=_snapshot(endpoint, ENDPOINT_FIELDS),
    )
    endpoint.delete()


# --- fraud policy --------------------------------------------------------------------------------


@transaction.atomic
def fraud_policy_update(*, policy: FraudPolicy, data: dict[str, Any], actor: Membership | None) -> FraudPolicy:
    unknown = set(data) - set(POLICY_FIELDS)
    if unknown:
        raise TypeError(f"cannot update {sorted(unknown)}")
    errors: dict[str, str] = {}
    if data.get("cost_spike_factor") is not None and data["cost_spike_factor"] <= 1:
        errors["cost_spike_factor"] = "The factor must be greater than 1."
    if data.get("retry_storm_repeats") is not None and data["retry_storm_repeats"] < 2:
        errors["retry_storm_repeats"] = "A storm needs at least 2 repeats."
    for field in ("long_context_tokens", "long_context_min_events", "unlisted_tool_min_calls", "cost_min_events"):
        if data.get(field) is not None and data[field] < 1:
            errors[field] = "Must be at least 1."
    if len(data.get("email_recipients") or []) > MAX_RECIPIENTS:
        errors["email_recipients"] = f"At most {MAX_RECIPIENTS} addresses."
    if errors:
        raise ValidationError(errors)
    locked = FraudPolicy.objects.for_tenant(policy.tenant_id).select_for_update().get(pk=policy.pk)
    before = _snapshot(locked, POLICY_FIELDS)
    for field, value in data.items():
        setattr(locked, field, value)
    locked.save()
    changes = _changes(before, _snapshot(locked, POLICY_FIELDS))
    if changes:
        record("fraud_policy.update", tenant=locked.tenant_id, actor=_actor(actor), target=locked, metadata=changes)
    return locked
