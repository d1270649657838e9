"""Webhook intake (verify → store once → enqueue on commit) and processing (claim → handle → done).

Invariant 6: an event that passed its signature check is in the inbox before the
2xx, and its effect is applied in the same transaction that marks it done, so a
duplicate, a redelivery, a crashed worker or a sweep can never apply it twice.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.cache import cache
from django.db import DataError, InterfaceError, OperationalError, connection, transaction
from django.utils import timezone

from apps.audit.services import Actor, record
from apps.billing import conf, providers
from apps.billing.errors import BillingError, TenantMismatchError, WebhookRejectedError
from apps.billing.models import WebhookEvent
from apps.billing.providers import Ignored, InboxEntry, WebhookRequest
from apps.billing.stripe_handlers import HANDLERS  # noqa: F401 — Stripe's table, patched by tests through here

logger = logging.getLogger(__name__)

STRIPE = "stripe"
# A freshly stored row gets this long for its enqueued task before the sweeper takes it too.
INTAKE_GRACE = timedelta(minutes=2)
# Rejected requests are audited at most once per provider and source per window: a flood of
# forgeries must not become a flood of audit rows.
REJECT_AUDIT_WINDOW_SECONDS = 60
# Ids per batched processing message (the publisher's and the sweeper's).
ENQUEUE_CHUNK = 100
# Rows applied under one commit by a batch (see webhooks_process_batch).
BATCH_TRANSACTION_SIZE = 20
# How long one processing task keeps taking other waiting rows (see webhooks_drain) before it lets the
# worker fetch its next message: long enough to amortise a message's cost over hundreds of events,
# short enough that a webhook task never holds a worker slot for long (its soft limit is 60 s).
DRAIN_SECONDS = 5.0

_TABLE = WebhookEvent._meta.db_table
_INSERT_ROW = "(%s, %s, %s, %s, %s::jsonb, 'pending', 0, '', %s, %s)"


@dataclass(frozen=True)
class Intake:
    """What one delivery stored: the new rows' ids (none for a pure duplicate) and how many events it carried."""

    pks: tuple[int, ...]
    received: int

    @property
    def stored(self) -> bool:
        return bool(self.pks)

    @property
    def pk(self) -> int | None:
        return self.pks[0] if self.pks else None


# --- intake ------------------------------------------------------------------------------------


def _audit_rejection(*, provider: str, reason: str, source: str) -> None:
    key = f"billing:webhook-reject:{provider}:{source}"
    if not cache.add(key, 1, REJECT_AUDIT_WINDOW_SECONDS):
        return  # already audited for this provider and source in this window
    record(
        "billing.webhook_rejected",
        actor=Actor.anonymous(source),
        target_type="webhook",
        target_id=provider,
        result="denied",
        metadata={"provider": provider, "reason": reason[:200], "window_seconds": REJECT_AUDIT_WINDOW_SECONDS},
    )


def _publish(pks: list[int]) -> None:
    """Send the processing task(s) for stored rows; a broker outage is logged, the sweeper finds the rows."""
    from apps.billing.tasks import process_webhook_event, process_webhook_events

    try:
        # No publish retries: the rows are stored and the sweeper re-enqueues them; retrying here would
        # only hold a provider's request (or the publisher thread) while the broker is down.
        for start in range(0, len(pks), ENQUEUE_CHUNK):
            chunk = pks[start : start + ENQUEUE_CHUNK]
            if len(chunk) == 1:
                process_webhook_event.apply_async((chunk[0],), retry=False)
            else:
                process_webhook_events.apply_async((chunk,), retry=False)
    except Exception:  # noqa: BLE001 — any broker error: the rows are stored, the sweep re-enqueues them
        logger.warning("billing: could not enqueue webhook events %s; the sweeper will retry", pks[:20], exc_info=True)


class _Publisher:
    """Per-process buffer of stored inbox ids, published by a daemon thread every few milliseconds.

    Publishing a Celery message costs more CPU than verifying and storing the event
    (benchmarks/bench_webhooks.py), so under load the ids that arrive within one
    window leave as one ``process_webhook_events`` message; alone, an id leaves as
    its own ``process_webhook_event``. The row is committed before the id gets
    here, so an id lost with its process (SIGKILL) is only late: the sweeper
    enqueues it after ``INTAKE_GRACE``. Off the request's thread, a broker that is
    down (kombu tries to connect for seconds) never holds a provider's request.
    Flushed at exit. ``BILLING_WEBHOOK_ENQUEUE_BATCH_MS`` 0 publishes on the
    caller's thread at once (the tests).
    """

    def __init__(self) -> None:
        self._pks: list[int] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.publishing = threading.Lock()

    def add(self, pk: int) -> None:
        window = conf.webhook_enqueue_batch_ms()
        if window <= 0:
            _publish([pk])
            return
        with self._lock:
            self._pks.append(pk)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="billing-enqueue", daemon=True)
                self._thread.start()
                atexit.register(self.flush)
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(max(conf.webhook_enqueue_batch_ms(), 0) / 1000)  # let the window's other ids join
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        with self.publishing:  # one publish at a time; a caller can wait for the one under way
            with self._lock:
                pks, self._pks = self._pks, []
            if pks:
                _publish(pks)


_publisher = _Publisher()


def _enqueue(pk: int) -> None:
    _publisher.add(pk)


def _store(entries: list[InboxEntry]) -> tuple[int, ...]:
    """One INSERT … ON CONFLICT DO NOTHING for all entries; returns the ids of the rows it created.

    One statement: in autocommit it is its own transaction (one round trip, no BEGIN/COMMIT),
    and a duplicate, even a concurrent one, inserts nothing and raises nothing.
    """
    if not connection.in_atomic_block:
        # The INSERT is this request's first statement: instead of Django's health-check round trip
        # (SELECT 1 before it, CONN_HEALTH_CHECKS), try it and on a dead kept-alive connection
        # reconnect once. Safe to repeat: a first attempt that did commit makes the second a no-op
        # duplicate (no enqueue then; the sweeper takes the row after the grace).
        connection.health_check_done = True
        try:
            return _insert(entries)
        except (OperationalError, InterfaceError):
            connection.close()
    return _insert(entries)


def _insert(entries: list[InboxEntry]) -> tuple[int, ...]:
    now = timezone.now()
    params: list[Any] = []
    for entry in entries:
        params += [
            entry.provider,
            entry.event_id,
            entry.event_type,
            entry.created,
            entry.payload,
            now,
            now + INTAKE_GRACE,
        ]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {_TABLE} (provider, event_id, event_type, event_created, payload, status, attempts,"
            " last_error, received_at, next_attempt_at) VALUES "
            + ", ".join([_INSERT_ROW] * len(entries))
            + " ON CONFLICT (provider, event_id) DO NOTHING RETURNING id",
            params,
        )
        return tuple(int(row[0]) for row in cursor.fetchall())


def webhook_receive(*, provider: str, body: bytes, headers: Mapping[str, str], source: str = "") -> Intake:
    """Verify a provider's delivery and store each of its events once; tasks are enqueued after commit.

    Raises WebhookRejectedError (audited, rate-limited per provider and source) for an
    unknown provider or anything not verified and well-formed; nothing is stored then.
    """
    adapter = providers.get(provider)
    try:
        if adapter is None:
            raise WebhookRejectedError("unknown provider")
        entries = adapter.verify(WebhookRequest(body=body, headers=headers))
        try:
            pks = _store(entries)
        except DataError as exc:  # e.g. a \u0000 escape jsonb refuses: not storable, so not accepted
            raise WebhookRejectedError("payload not storable") from exc
    except WebhookRejectedError as exc:
        _audit_rejection(provider=provider if adapter else "unknown", reason=exc.reason, source=source)
        raise
    for pk in pks:
        # At once in autocommit (the INSERT has committed); after the caller's commit inside one.
        transaction.on_commit(lambda pk=pk: _enqueue(pk))
    return Intake(pks=pks, received=len(entries))


def stripe_webhook_receive(*, payload: bytes, signature: str | None, source: str = "") -> Intake:
    """Stripe's intake (kept for callers of the first version): ``webhook_receive`` for provider "stripe"."""
    headers = {"Stripe-Signature": signature} if signature else {}
    return webhook_receive(provider=STRIPE, body=payload, headers=headers, source=source)


# --- processing --------------------------------------------------------------------------------


def _backoff(attempts: int) -> timedelta:
    # 30 s, 1 min, 2 min … capped at 1 h: a Stripe outage or an unknown customer gets time to settle.
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


@dataclass(frozen=True)
class Outcome:
    status: str
    retry_in: float | None = None


_CLAIMABLE = [WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED]


def webhook_process(*, event_pk: int) -> Outcome:
    """Claim one inbox row, apply its handler, mark it done in the same transaction.

    A row held by another worker (SKIP LOCKED) or already finished is left alone.
    A handler error rolls back the effect, counts the attempt and schedules the
    next one; after ``BILLING_WEBHOOK_MAX_ATTEMPTS`` the row is dead-lettered.
    """
    with transaction.atomic():
        row = (
            WebhookEvent.objects.select_for_update(skip_locked=True).filter(pk=event_pk, status__in=_CLAIMABLE).first()
        )
        if row is None:
            return Outcome("skipped")
        return _apply(row)


def webhooks_process_batch(*, event_pks: list[int], drain_seconds: float = 0.0) -> dict[int, Outcome]:
    """Claim the given rows in slices, one query and one commit per slice, and apply each.

    Exactly-once holds per event as in ``webhook_process``: each row's effect and its
    "done" mark are written in the same transaction (each handler in its own savepoint,
    so one failing event rolls back only its own effect and is marked failed). A crash
    rolls the slice under way back: no effect without its mark, no mark without its effect.
    One claim and one commit (one WAL flush) per slice is what lets a single worker
    drain a backlog fast (benchmarks/bench_webhooks_backlog.py). Rows held elsewhere
    (SKIP LOCKED) or already finished are left out of the answer. With ``drain_seconds``,
    other pending rows are taken afterwards for that long (``webhooks_drain``) and are in
    the answer too.
    """
    return _drain(event_pks, deadline=time.monotonic() + drain_seconds if drain_seconds > 0 else None)


def webhooks_drain(*, event_pk: int, seconds: float = DRAIN_SECONDS) -> tuple[Outcome, dict[int, Outcome]]:
    """Process one event's row and, while others are waiting, up to ``seconds`` of other pending rows.

    The processing task of one event calls this. After a worker outage the queue holds
    one message per stored event; handling them one by one costs a Celery message
    (fetch, hand-off, ack) per event, more than the event itself. So the first message
    claims its own row together with other *pending* rows (stored, verified, ready —
    failed rows wait for their backoff) in slices of ``BATCH_TRANSACTION_SIZE``, SKIP
    LOCKED, each slice one transaction holding the effects and the done marks, exactly
    as a batch; the later messages of rows already done are then a no-op of ONE indexed
    query (the row's status and whether anything is pending). Two workers draining at
    once skip each other's locked rows, so each event is still applied once.

    Returns the outcome for ``event_pk`` ("skipped" if it was finished or held
    elsewhere) and the outcomes of the other rows it applied.
    """
    with connection.cursor() as cursor:  # autocommit: no BEGIN/COMMIT for the common no-op
        cursor.execute(
            f"SELECT (SELECT status FROM {_TABLE} WHERE id = %s), EXISTS (SELECT 1 FROM {_TABLE} WHERE status = %s)",
            [event_pk, WebhookEvent.Status.PENDING],
        )
        status, waiting = cursor.fetchone()
    claimable = status in _CLAIMABLE
    if not claimable and not waiting:
        return Outcome("skipped"), {}
    outcomes = _drain([event_pk] if claimable else [], deadline=time.monotonic() + seconds)
    own = outcomes.pop(event_pk, Outcome("skipped"))
    return own, outcomes


def _drain(event_pks: list[int], *, deadline: float | None) -> dict[int, Outcome]:
    """Apply the given rows, then (until ``deadline``; never without one) other pending rows, slice by slice."""
    outcomes: dict[int, Outcome] = {}
    todo = list(event_pks)
    more = deadline is not None
    # Transactions of BATCH_TRANSACTION_SIZE rows: one commit per slice still amortises the WAL
    # flush, and no transaction holds the tenants' audit-chain heads for long (two workers'
    # batches would otherwise wait on each other for a whole batch).
    while todo or more:
        with transaction.atomic():
            rows: list[WebhookEvent] = []
            if todo:
                chosen, todo = todo[:BATCH_TRANSACTION_SIZE], todo[BATCH_TRANSACTION_SIZE:]
                rows = list(
                    WebhookEvent.objects.select_for_update(skip_locked=True)
                    .filter(pk__in=chosen, status__in=_CLAIMABLE)
                    .order_by("pk")  # arrival order; the handlers are order-safe anyway
                )
            room = BATCH_TRANSACTION_SIZE - len(rows)
            if more and not todo and room > 0:
                # Other rows waiting: pending ones only (a failed row waits for its backoff), found by the
                # "due" index on (status, next_attempt_at), held ones skipped. No ORDER BY: right after a
                # burst the planner's statistics still say "few pending" and it sorts every pending row per
                # claim (15 ms for 8,000 rows, measured); unordered is ~2 ms and order does not matter
                # (the handlers are order-safe; every pending row gets taken).
                extra = list(
                    WebhookEvent.objects.select_for_update(skip_locked=True)
                    .filter(status=WebhookEvent.Status.PENDING)
                    .exclude(pk__in=[row.pk for row in rows])
                    .order_by()[:room]
                )
                rows += extra
                more = len(extra) == room and deadline is not None and time.monotonic() < deadline
            outcomes.update(_apply_slice(rows))
    return outcomes


class _Redo(Exception):  # noqa: N818 — control flow of _apply_slice, never leaves it
    """A handler raised on the slice's fast path: roll the slice back, then apply it with that outcome fixed."""

    def __init__(self, pk: int, error: Exception) -> None:
        super().__init__(pk)
        self.pk, self.error = pk, error


def _apply_slice(rows: list[WebhookEvent]) -> dict[int, Outcome]:
    """Apply claimed rows and mark the successful ones done, inside the caller's (claiming) transaction.

    Fast path: one savepoint around the slice instead of one per event (two round trips
    less per event). If a handler raises, the slice is rolled back to that savepoint
    (the rows stay locked by the claim); the rows before it are applied again (as after
    a crash: handlers are idempotent), the failing one gets its failure outcome without a
    second run of its handler (one run per attempt), and the rest go on the same way.
    """
    if not rows:
        return {}
    try:
        with transaction.atomic():
            done: list[tuple[int, int | None]] = []
            outcomes = {row.pk: _apply(row, done, isolated=False) for row in rows}
            _mark_done(done)
        return outcomes
    except _Redo as redo:
        failed_pk, error = redo.pk, redo.error
    fresh = {row.pk: row for row in WebhookEvent.objects.filter(pk__in=[row.pk for row in rows])}  # still ours
    rows = [fresh[row.pk] for row in rows]
    at = next(n for n, row in enumerate(rows) if row.pk == failed_pk)
    outcomes = _apply_slice(rows[:at])
    outcomes[failed_pk] = _apply(rows[at], failure=error)
    outcomes.update(_apply_slice(rows[at + 1 :]))
    return outcomes


def _apply(
    row: WebhookEvent,
    done: list[tuple[int, int | None]] | None = None,
    *,
    isolated: bool = True,
    failure: Exception | None = None,
) -> Outcome:
    """Apply a claimed row's handler and record the outcome on the row (inside the caller's transaction).

    With ``done`` (a batch), a successful row's (id, tenant id) is appended there for the batch's
    one UPDATE before its commit, instead of an UPDATE of its own. ``isolated=False`` (the
    fast path of ``_apply_slice``): no savepoint of its own, and a handler exception is raised
    as ``_Redo`` for the caller to roll back; ``failure``: that exception, recorded as this
    attempt's outcome without running the handler again.
    """
    now = timezone.now()
    adapter = providers.get(row.provider)
    handler = adapter.handler(row.event_type) if adapter else None
    actor = Actor.system(f"{row.provider} webhook")
    if handler is None:
        return _finish_ignored(row, now, f"no handler for {row.provider} event type {row.event_type}")
    try:
        if failure is not None:
            raise failure
        if isolated:
            with transaction.atomic():  # savepoint: a failed handler leaves no partial effect
                tenant_id = handler(row.payload)
        else:
            try:
                tenant_id = handler(row.payload)
            except Exception as exc:  # every outcome but success is recorded after the rollback
                raise _Redo(row.pk, exc) from exc
    except _Redo:
        raise
    except Ignored as exc:
        return _finish_ignored(row, now, str(exc))
    except TenantMismatchError as exc:
        row.status, row.last_error, row.processed_at = WebhookEvent.Status.REFUSED, str(exc)[:2000], now
        row.attempts += 1
        row.save(update_fields=["status", "last_error", "processed_at", "attempts"])
        # Audited in the owning tenant's chain (their customer was named for another tenant);
        # outside the handler's savepoint, so the record survives the rolled-back effect.
        record(
            "billing.webhook_refused",
            tenant=exc.owner_id,
            actor=actor,
            target=row,
            result="denied",
            metadata={
                "event_id": row.event_id,
                "type": row.event_type,
                "claimed_tenant": exc.claimed,
                "customer": exc.customer_id,
                "reason": str(exc)[:300],
            },
        )
        return Outcome(row.status)
    except Exception as exc:  # noqa: BLE001 — any handler failure is retried, then dead-lettered
        row.attempts += 1
        row.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if row.attempts >= conf.webhook_max_attempts():
            row.status = WebhookEvent.Status.DEAD
            row.save(update_fields=["status", "attempts", "last_error"])
            record(
                "billing.webhook_dead_lettered",
                actor=actor,
                target=row,
                result="failure",
                metadata={"event_id": row.event_id, "type": row.event_type, "attempts": row.attempts},
            )
            return Outcome(row.status)
        delay = _backoff(row.attempts)
        row.status, row.next_attempt_at = WebhookEvent.Status.FAILED, now + delay
        row.save(update_fields=["status", "attempts", "last_error", "next_attempt_at"])
        return Outcome(row.status, retry_in=delay.total_seconds())
    row.status, row.processed_at, row.tenant_id = WebhookEvent.Status.DONE, now, tenant_id
    if done is None:
        row.save(update_fields=["status", "processed_at", "tenant_id"])
    else:
        done.append((row.pk, tenant_id))
    return Outcome(row.status)


def _mark_done(done: list[tuple[int, int | None]]) -> None:
    """One UPDATE for a batch's successful rows, in the transaction that holds their effects."""
    if not done:
        return
    values = ", ".join(["(%s::bigint, %s::bigint)"] * len(done))
    with connection.cursor() as cursor:  # the table name from the model, every value bound
        cursor.execute(
            f"UPDATE {_TABLE} AS e SET status = 'done', processed_at = %s, tenant_id = v.tenant"
            f" FROM (VALUES {values}) AS v(id, tenant) WHERE e.id = v.id",
            [timezone.now(), *(value for pair in done for value in pair)],
        )


def _finish_ignored(row: WebhookEvent, now: datetime, reason: str) -> Outcome:
    """Verified and stored, but nothing to apply: done as "ignored", with the reason, never retried."""
    row.status, row.processed_at, row.last_error = WebhookEvent.Status.IGNORED, now, reason[:2000]
    row.save(update_fields=["status", "processed_at", "last_error"])
    return Outcome(row.status)


def webhooks_sweep(*, now: datetime | None = None, limit: int = 500) -> int:
    """Re-enqueue rows left pending or failed past their next attempt (lost message, killed worker).

    Each row's next attempt is pushed forward as it is taken, so overlapping
    sweeps do not enqueue it twice; a second task would skip it anyway.
    """
    now = now or timezone.now()
    with transaction.atomic():
        rows = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(
                status__in=[WebhookEvent.Status.PENDING, WebhookEvent.Status.FAILED],
                next_attempt_at__lte=now,
            )
            .order_by("next_attempt_at")
            .values_list("pk", flat=True)[:limit]
        )
        if rows:
            WebhookEvent.objects.filter(pk__in=rows).update(next_attempt_at=now + INTAKE_GRACE)
            transaction.on_commit(lambda: _publish(rows))  # in messages of ENQUEUE_CHUNK ids
    return len(rows)


def webhook_replay(*, event: WebhookEvent, by: Any) -> None:
    """Staff: put a dead-lettered (or refused) event back in the queue, attempts reset, audited."""
    if event.status not in (WebhookEvent.Status.DEAD, WebhookEvent.Status.REFUSED):
        raise BillingError("Only dead-lettered or refused events can be replayed.")
    with transaction.atomic():
        changed = WebhookEvent.objects.filter(pk=event.pk, status=event.status).update(
            status=WebhookEvent.Status.PENDING, attempts=0, next_attempt_at=timezone.now() + INTAKE_GRACE
        )
        if not changed:
            raise BillingError("The event changed meanwhile; reload the page.")
        record(
            "billing.webhook_replayed",
            actor=Actor.for_user(by),
            target=event,
            metadata={"event_id": event.event_id, "type": event.event_type, "previous_status": event.status},
        )
        transaction.on_commit(lambda: _enqueue(event.pk))
