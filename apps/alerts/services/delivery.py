"""Sending one delivery: claim, send, log the attempt, schedule the next one or give up.

A delivery is claimed with a conditional UPDATE (``status`` waiting and
``next_attempt_at`` due → ``sending``, ``attempts + 1``, ``next_attempt_at``
pushed out by a lease). Zero rows changed means another worker has it or it is
not due, so a duplicate task message, the Celery retry and the sweeper can all
fire at once and the receiver still gets one request per attempt. A worker
killed mid-send leaves the row ``sending`` until its lease runs out; the
sweeper then hands it to another worker (at-least-once: the receiver drops a
repeat by ``Bastion-Event-Id``).

The HTTP request is made outside any transaction. Its result is written with
the attempt's log row in one transaction: delivered, or retrying with
exponential backoff (``apps.alerts.conf.backoff_seconds``), or failed after
``ALERTS_DELIVERY_MAX_ATTEMPTS``. A failed delivery stays visible in the
delivery log and can be sent again by an admin (``delivery_retry``).
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
from dataclasses import dataclass
from datetime import timedelta

from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from apps.alerts import conf, crypto
from apps.alerts.models import Delivery, DeliveryAttempt, WebhookEndpoint
from apps.audit.services import Actor, record
from apps.core.netfetch import FetchError, fetch
from apps.tenants.models import Membership

logger = logging.getLogger(__name__)

WAITING = (Delivery.Status.PENDING, Delivery.Status.RETRYING, Delivery.Status.SENDING)
# The receiver's answer is judged by its status only; its body is read (capped) and dropped. The cap is
# generous because a body over it fails the attempt although the receiver took the event, and the
# retry would then deliver it again (gateways answer 200 with whole HTML pages).
MAX_RESPONSE_BYTES = 1024 * 1024
USER_AGENT = "Bastion-Alerts/1"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one call did: ``claimed`` False when there was nothing to do; ``retry_in`` seconds when it will retry."""

    claimed: bool
    ok: bool = False
    retry_in: float | None = None


def _lease() -> timedelta:
    # Longer than the send can take, so a live worker never loses its claim.
    return timedelta(seconds=conf.webhook_timeout() * 2 + 30)


def _claim(delivery_id: int) -> Delivery | None:
    now = timezone.now()
    changed = Delivery.objects.filter(pk=delivery_id, status__in=WAITING, next_attempt_at__lte=now).update(
        status=Delivery.Status.SENDING, attempts=F("attempts") + 1, next_attempt_at=now + _lease()
    )
    if not changed:
        return None
    return Delivery.objects.select_related("endpoint", "tenant").get(pk=delivery_id)


def _endpoint_secrets(endpoint: WebhookEndpoint) -> list[str]:
    found = [crypto.decrypt(endpoint.secret_encrypted)]
    if (
        endpoint.previous_secret_encrypted
        and endpoint.previous_secret_until
        and endpoint.previous_secret_until > timezone.now()
    ):
        found.append(crypto.decrypt(endpoint.previous_secret_encrypted))
    return found


def _send_webhook(delivery: Delivery) -> tuple[bool, int | None, str]:
    endpoint = delivery.endpoint
    if endpoint is None or not endpoint.enabled:
        return False, None, "The endpoint was deleted or disabled."
    body = json.dumps(delivery.payload, separators=(",", ":"), sort_keys=True).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        crypto.EVENT_ID_HEADER: str(delivery.event_id),
        crypto.SIGNATURE_HEADER: crypto.sign(body, _endpoint_secrets(endpoint)),
    }
    try:
        # ``fetch`` resolves once, refuses private/link-local/loopback addresses under the policy and
        # connects to the address it checked: a DNS answer that changed since the endpoint was saved
        # is checked again here. It passes ``data`` to requests as the raw body.
        response = fetch(
            "POST",
            endpoint.url,
            max_bytes=MAX_RESPONSE_BYTES,
            timeout=conf.webhook_timeout(),
            policy=conf.webhook_policy(),
            data=body,  # type: ignore[arg-type]  # requests sends bytes as they are
            headers=headers,
        )
    except FetchError as exc:
        return False, None, f"The URL {exc.message}."
    if 200 <= response.status < 300:
        return True, response.status, ""
    return False, response.status, f"The receiver answered HTTP {response.status}."


def _email_text(delivery: Delivery) -> tuple[str, str]:
    payload = delivery.payload
    if "alert" in payload:
        item = payload["alert"]
        subject = f"[Bastion] Alert in {payload['tenant']}: {item['title']}"
        lines = [
            item["title"],
            "",
            f"Observed: {item['observed']} (expected at most {item['expected'] or 'n/a'}), volume {item['volume']}.",
            f"Window: {item['window_start']} to {item['window_end']}.",
            "",
            f"Acknowledge or resolve it at {item['url']}",
        ]
    else:
        item = payload["fraud_case"]
        subject = f"[Bastion] Fraud case in {payload['tenant']}: {item['summary']}"
        lines = [item["summary"], f"API client: {item['client_id']}", "", f"Review it at {item['url']}"]
    # A rule name or a tool name reported by a client may carry line breaks: a header must not.
    return " ".join(subject.split())[:200], "\n".join(lines)


def _send_email(delivery: Delivery) -> tuple[bool, int | None, str]:
    subject, text = _email_text(delivery)
    try:
        send_mail(subject, text, None, [delivery.destination])
    except (smtplib.SMTPException, OSError) as exc:
        return False, None, f"The mail server refused or failed ({type(exc).__name__})."
    return True, None, ""


def delivery_attempt(*, delivery_id: int) -> Outcome:
    """Make the next attempt of a due delivery; see the module docstring. Safe to call any number of times."""
    delivery = _claim(delivery_id)
    if delivery is None:
        return Outcome(claimed=False)
    started = time.monotonic()
    try:
        if delivery.channel == Delivery.Channel.WEBHOOK:
            ok, status_code, error = _send_webhook(delivery)
        else:
            ok, status_code, error = _send_email(delivery)
    except crypto.SecretUnreadableError:
        ok, status_code, error = False, None, "The endpoint's secret cannot be read (was SECRET_KEY changed?)."
    except Exception as exc:  # any other fault is a logged attempt, never a row stuck in "sending"
        logger.exception("alert delivery %s: unexpected error", delivery.pk)
        ok, status_code, error = False, None, f"Bastion could not send it ({type(exc).__name__})."
    duration = int((time.monotonic() - started) * 1000)
    return _settle(delivery, ok=ok, status_code=status_code, error=error, duration_ms=duration)


@transaction.atomic
def _settle(delivery: Delivery, *, ok: bool, status_code: int | None, error: str, duration_ms: int) -> Outcome:
    now = timezone.now()
    DeliveryAttempt.objects.create(
        tenant_id=delivery.tenant_id,
        delivery=delivery,
        number=delivery.attempts,
        ok=ok,
        status_code=status_code,
        error=error[:300],
        duration_ms=duration_ms,
    )
    fields: dict[str, object] = {"last_error": error[:300]}
    retry_in: float | None = None
    if ok:
        fields.update(status=Delivery.Status.DELIVERED, delivered_at=now)
    elif delivery.attempts >= (delivery.give_up_after or conf.max_attempts()):
        fields.update(status=Delivery.Status.FAILED)
        logger.warning("alert delivery %s failed after %s attempts: %s", delivery.pk, delivery.attempts, error)
    else:
        retry_in = conf.backoff_seconds(delivery.attempts)
        fields.update(status=Delivery.Status.RETRYING, next_attempt_at=now + timedelta(seconds=retry_in))
    # Only the claim holder writes: the row is still ``sending`` with this attempt number.
    Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.SENDING, attempts=delivery.attempts).update(**fields)
    return Outcome(claimed=True, ok=ok, retry_in=retry_in)


def due_delivery_ids(*, grace: timedelta = timedelta(minutes=1), limit: int = 500) -> list[int]:
    """Deliveries a sweep should enqueue: due for a while (the task's own retry had its chance) or lease expired."""
    cutoff = timezone.now() - grace
    return list(
        Delivery.objects.filter(Q(status__in=WAITING), next_attempt_at__lte=cutoff)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )


@transaction.atomic
def delivery_retry(*, delivery: Delivery, actor: Membership) -> Delivery:
    """Send a failed delivery again (a fresh round of attempts); audited."""
    from apps.alerts.tasks import deliver  # lazily, on commit: a service enqueues its own app's task

    changed = Delivery.objects.filter(pk=delivery.pk, status=Delivery.Status.FAILED).update(
        status=Delivery.Status.PENDING,
        give_up_after=F("attempts") + conf.max_attempts(),
        next_attempt_at=timezone.now(),
        last_error="",
    )
    if changed:
        record(
            "alert.delivery_retry",
            tenant=delivery.tenant_id,
            actor=Actor.for_user(actor.user),
            target=delivery,
            metadata={"channel": delivery.channel},
        )
        transaction.on_commit(lambda: deliver.delay(delivery.pk))
    delivery.refresh_from_db()
    return delivery
