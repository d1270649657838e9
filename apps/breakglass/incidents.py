"""Incidents (#11, item 5): closing an incident ends every elevation tied to it.

Two ways in, one effect (``_close``): the console action ("close incident
INC-123", an approver of each affected policy or a holder of
``member.manage``) and the tenant's signed incident webhook (Bastion's generic
form or PagerDuty v3, see ``webhook_protocol``). Closing ends the active
elevations that name the incident (their time-boxed bindings end at once, so
``authorize()`` refuses them on the next request) and cancels the pending
requests that name it, so nobody approves access for an incident that is
over. Every step is audited; a closure is recorded with what it ended.

A webhook delivery is verified before anything is read from its body, then
its replay key (signature or PagerDuty event id) is inserted under a unique
constraint in the same transaction that closes the incident: a replay, even
one racing the original, inserts nothing and changes nothing. Refusals are
audited at most once a minute per tenant and source address.
"""

from __future__ import annotations

import re
import secrets as random_secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.access.decisions import can
from apps.audit.services import Actor, record
from apps.breakglass import secretbox
from apps.breakglass.models import Elevation, IncidentClosure, IncidentWebhook, WebhookReceipt
from apps.breakglass.services import BreakglassError, _actor, _fresh, end_locked, may_approve, notify_on_commit
from apps.breakglass.webhook_protocol import TOLERANCE, Delivery, WebhookRejectedError, verify
from apps.tenants.models import Membership, Tenant

__all__ = [
    "WebhookNotFoundError",
    "WebhookRejectedError",
    "incident_close",
    "incident_webhook_disable",
    "incident_webhook_enable",
    "incident_webhook_receive",
    "incident_webhook_retire_previous",
    "incident_webhook_rotate",
    "receipts_purge",
]

TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{20,64}$")
SECRET_PREFIX = "bgwh_"  # noqa: S105 - a prefix that marks the secret in logs and scanners, not a secret
# Refusals are audited at most once per tenant and source per window: a flood of forgeries
# must not become a flood of audit rows (as billing does for Stripe).
REJECT_AUDIT_WINDOW_SECONDS = 60
# Replay keys are kept past any delivery the 5-minute window could still accept (a timestamp up
# to 5 minutes in the future stays acceptable for 10 minutes), with a margin.
RECEIPT_KEEP = 3 * TOLERANCE


class WebhookNotFoundError(LookupError):
    """No incident webhook has that token (404)."""


def rotation_grace() -> timedelta:
    """How long the previous secret still verifies after a rotation (``BREAKGLASS_WEBHOOK_ROTATION_GRACE_HOURS``)."""
    return timedelta(hours=float(getattr(settings, "BREAKGLASS_WEBHOOK_ROTATION_GRACE_HOURS", 24)))


# --- closing ----------------------------------------------------------------------------------


def _open_rows(tenant_id: int, refs: tuple[str, ...]) -> list[Elevation]:
    """Pending and active elevations naming one of ``refs`` (case-insensitive), locked, oldest first."""
    match = Q()
    for ref in refs:
        match |= Q(incident_ref__iexact=ref)
    return list(
        Elevation.objects.for_tenant(tenant_id)
        .filter(match, status__in=[Elevation.Status.PENDING, Elevation.Status.ACTIVE])
        .select_for_update(of=("self",))
        .select_related("policy", "role", "requester__user")
        .order_by("id")
    )


def _close(
    tenant_id: int, rows: list[Elevation], *, actor: Membership | None, label: str, source: str, now: datetime
) -> IncidentClosure:
    system = "incident webhook" if actor is None else "break-glass"
    why: dict[str, Any] = {"incident": label, "reason": "incident closed", "source": source}
    ended = cancelled = 0
    for elevation in rows:
        if elevation.status == Elevation.Status.ACTIVE:
            end_locked(elevation, actor=actor, now=now, system=system, **why)
            ended += 1
            continue
        elevation.status, elevation.ended_at, elevation.ended_by = Elevation.Status.CANCELLED, now, actor
        elevation.save(update_fields=["status", "ended_at", "ended_by"])
        record(
            "breakglass.cancel",
            tenant=tenant_id,
            actor=_actor(actor) if actor is not None else Actor.system(system),
            target=elevation,
            metadata={"elevation": elevation.pk, **why},
        )
        notify_on_commit(elevation_id=elevation.pk, event="cancelled")
        cancelled += 1
    closure = IncidentClosure.objects.create(
        tenant_id=tenant_id,
        incident_ref=label[:100],
        source=source,
        closed_by=actor,
        closed_at=now,
        ended=ended,
        cancelled=cancelled,
    )
    record(
        "breakglass.incident_close",
        tenant=tenant_id,
        actor=_actor(actor) if actor is not None else Actor.system(system),
        target=closure,
        metadata={
            "incident": label,
            "source": source,
            "ended": ended,
            "cancelled": cancelled,
            "elevations": [e.pk for e in rows],
        },
    )
    return closure


@transaction.atomic
def incident_close(*, tenant: Tenant, actor: Membership, incident_ref: str) -> IncidentClosure:
    """Close ``incident_ref`` from the console: end its active elevations, cancel its pending requests.

    ``actor`` must hold ``member.manage`` or be an approver of every affected elevation's policy
    (checked at this moment). Raises BreakglassError (empty or unknown reference, not allowed);
    nothing changes then.
    """
    ref = (incident_ref or "").strip()
    if not 0 < len(ref) <= 100:
        raise BreakglassError("Give the incident reference, e.g. INC-123 (at most 100 characters).")
    actor = _fresh(actor)
    if actor.tenant_id != tenant.pk:
        raise BreakglassError("You are not a member of this tenant.")
    rows = _open_rows(tenant.pk, (ref,))
    if not rows:
        raise BreakglassError(f"No open request or active elevation names incident {ref}.")
    if not can(actor, "member.manage", tenant=actor.tenant):
        for elevation in rows:
            if not may_approve(policy=elevation.policy, membership=actor):
                raise BreakglassError(
                    f"Elevation #{elevation.pk} (policy “{elevation.policy.name}”) names {ref}: only its "
                    "approvers or a member manager can close this incident."
                )
    return _close(tenant.pk, rows, actor=actor, label=ref, source=IncidentClosure.Source.CONSOLE, now=timezone.now())


# --- the webhook's secret ---------------------------------------------------------------------


def _ensure_webhook_editor(actor: Membership, tenant: Tenant) -> Membership:
    actor = _fresh(actor)
    if actor.tenant_id != tenant.pk or not (
        can(actor, "breakglass.approve", tenant=tenant) and can(actor, "role.manage", tenant=tenant)
    ):
        raise BreakglassError("Managing the incident webhook needs breakglass.approve and role.manage.")
    return actor


def _new_secret() -> str:
    return SECRET_PREFIX + random_secrets.token_urlsafe(32)


def _hook(tenant: Tenant) -> IncidentWebhook | None:
    return IncidentWebhook.objects.for_tenant(tenant).select_for_update().first()


@transaction.atomic
def incident_webhook_enable(*, tenant: Tenant, actor: Membership) -> tuple[IncidentWebhook, str]:
    """Create ``tenant``'s incident webhook; returns it and its secret, to be shown once and never again."""
    actor = _ensure_webhook_editor(actor, tenant)
    if _hook(tenant) is not None:
        raise BreakglassError("The incident webhook exists; rotate its secret instead.")
    secret = _new_secret()
    hook = IncidentWebhook.objects.create(
        tenant=tenant, token=random_secrets.token_urlsafe(24), secret_encrypted=secretbox.encrypt(secret)
    )
    record("breakglass.webhook_enable", tenant=tenant, actor=_actor(actor), target=hook, metadata={"webhook": hook.pk})
    return hook, secret


def _given_secret(secret: str) -> str:
    secret = (secret or "").strip()
    if not 16 <= len(secret) <= 200 or any(c.isspace() for c in secret):
        raise BreakglassError("A signing secret has 16 to 200 characters and no spaces.")
    return secret


@transaction.atomic
def incident_webhook_rotate(
    *, tenant: Tenant, actor: Membership, secret: str | None = None
) -> tuple[IncidentWebhook, str]:
    """A new secret; the previous one still verifies for the rotation grace period.

    ``secret`` None makes a random one (returned, to be shown once); a given one is the secret
    the sender made itself (PagerDuty shows its own when a subscription is created).
    """
    actor = _ensure_webhook_editor(actor, tenant)
    hook = _hook(tenant)
    if hook is None:
        raise BreakglassError("Enable the incident webhook first.")
    now = timezone.now()
    given = secret is not None
    secret = _given_secret(secret) if secret is not None else _new_secret()
    hook.previous_secret_encrypted, hook.previous_valid_until = hook.secret_encrypted, now + rotation_grace()
    hook.secret_encrypted, hook.rotated_at = secretbox.encrypt(secret), now
    hook.save(update_fields=["secret_encrypted", "previous_secret_encrypted", "previous_valid_until", "rotated_at"])
    record(
        "breakglass.webhook_rotate",
        tenant=tenant,
        actor=_actor(actor),
        target=hook,
        metadata={
            "webhook": hook.pk,
            "previous_valid_until": hook.previous_valid_until.isoformat(),
            "secret_source": "given" if given else "generated",
        },
    )
    return hook, secret


@transaction.atomic
def incident_webhook_retire_previous(*, tenant: Tenant, actor: Membership) -> IncidentWebhook:
    """Stop accepting the previous secret now (the sender uses the new one)."""
    actor = _ensure_webhook_editor(actor, tenant)
    hook = _hook(tenant)
    if hook is None or not hook.previous_secret_encrypted:
        raise BreakglassError("There is no previous secret to retire.")
    hook.previous_secret_encrypted, hook.previous_valid_until = "", None
    hook.save(update_fields=["previous_secret_encrypted", "previous_valid_until"])
    record("breakglass.webhook_retire", tenant=tenant, actor=_actor(actor), target=hook, metadata={"webhook": hook.pk})
    return hook


@transaction.atomic
def incident_webhook_disable(*, tenant: Tenant, actor: Membership) -> None:
    """Delete the webhook: its URL answers 404 from now on; enabling again makes a new URL and secret."""
    actor = _ensure_webhook_editor(actor, tenant)
    hook = _hook(tenant)
    if hook is None:
        raise BreakglassError("The incident webhook is not enabled.")
    record("breakglass.webhook_disable", tenant=tenant, actor=_actor(actor), target=hook, metadata={"webhook": hook.pk})
    hook.delete()


# --- deliveries -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Receipt:
    """What a verified delivery did: ``closure`` None when the event closes nothing (acknowledged, triggered …)."""

    delivery: Delivery
    closure: IncidentClosure | None


def _audit_rejection(hook: IncidentWebhook, *, reason: str, source: str) -> None:
    if not cache.add(f"breakglass:webhook-reject:{hook.tenant_id}:{source}", 1, REJECT_AUDIT_WINDOW_SECONDS):
        return  # already audited for this tenant and source in this window
    record(
        "breakglass.webhook_rejected",
        tenant=hook.tenant_id,
        actor=Actor.anonymous(source),
        target_type="incident_webhook",
        target_id=hook.pk,
        result="denied",
        metadata={"reason": reason[:200], "window_seconds": REJECT_AUDIT_WINDOW_SECONDS},
    )


def _secrets(hook: IncidentWebhook, now: datetime) -> list[str]:
    found = [secretbox.decrypt(hook.secret_encrypted)]
    if hook.previous_secret_encrypted and hook.previous_valid_until and hook.previous_valid_until > now:
        found.append(secretbox.decrypt(hook.previous_secret_encrypted))
    return found


def incident_webhook_receive(*, token: str, body: bytes, headers: dict[str, str], source: str = "") -> Receipt:
    """Verify a delivery to the webhook named by ``token`` and apply it once.

    Raises WebhookNotFoundError for an unknown token (404) and WebhookRejectedError for a
    forged, stale, replayed or malformed delivery (400; audited, rate-limited); nothing changes then.
    """
    hook = (
        IncidentWebhook.objects.select_related("tenant").filter(token=token).first() if TOKEN_RE.match(token) else None
    )
    if hook is None:
        raise WebhookNotFoundError(token)
    now = timezone.now()
    try:
        delivery = verify(body=body, headers=headers, secrets=_secrets(hook, now), now=now)
    except (WebhookRejectedError, secretbox.SecretUnreadableError) as exc:
        _audit_rejection(hook, reason=getattr(exc, "reason", str(exc)), source=source)
        raise WebhookRejectedError(getattr(exc, "reason", "secret unreadable")) from exc
    with transaction.atomic():
        # get_or_create: a concurrent twin waits on the unique index, then finds this row.
        _, fresh = WebhookReceipt.objects.get_or_create(
            tenant_id=hook.tenant_id, key=delivery.replay_key, defaults={"received_at": now}
        )
        closure = None
        if fresh and delivery.refs:
            rows = _open_rows(hook.tenant_id, delivery.refs)
            closure = _close(hook.tenant_id, rows, actor=None, label=delivery.label, source=delivery.source, now=now)
    if not fresh:
        _audit_rejection(hook, reason="replayed", source=source)
        raise WebhookRejectedError("replayed")
    return Receipt(delivery=delivery, closure=closure)


def receipts_purge(*, now: datetime | None = None) -> int:
    """Forget replay keys older than any delivery the window could still accept (the beat task's step)."""
    cutoff = (now or timezone.now()) - RECEIPT_KEEP
    deleted, _ = WebhookReceipt.objects.filter(received_at__lt=cutoff).delete()
    return deleted
