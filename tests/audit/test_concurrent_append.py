"""record()'s one-statement append: cheap when this process knows the head, never wrong when it does not.

The process keeps a guess of each chain's head; the append statement locks the
head only if it still matches the guess. These tests make the guess wrong in
every way a real deployment can (a rolled-back caller, another process
appending, a purge) and race real writers on one chain, then verify the chain.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import pytest
from django.db import close_old_connections, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from apps.audit import services
from apps.audit.models import AuditChainHead, AuditEvent
from apps.audit.services import record
from apps.audit.verification import verify_chain
from tests.factories import TenantFactory


def _seqs(tenant: Any) -> list[int]:
    return list(AuditEvent.objects.filter(chain=tenant.pk).order_by("seq").values_list("seq", flat=True))


def _assert_whole_chain(tenant: Any, count: int) -> None:
    """No fork, no gap: seq 1..count each once, the head at count, every link verifying."""
    assert _seqs(tenant) == list(range(1, count + 1))
    head = AuditChainHead.objects.get(chain=tenant.pk)
    last = AuditEvent.objects.get(chain=tenant.pk, seq=count)
    assert (head.seq, bytes(head.head_hash)) == (count, bytes(last.hash))
    report = verify_chain(tenant.pk)
    assert report.ok, report.problem
    assert report.checked == count


def test_a_known_head_costs_one_statement(cast):
    record("a.first", tenant=cast.acme)
    with CaptureQueriesContext(connection) as captured:
        record("a.second", tenant=cast.acme)
    assert len(captured) == 1, [query["sql"] for query in captured]
    _assert_whole_chain(cast.acme, 2)


def test_a_rolled_back_caller_leaves_no_event_and_no_wrong_head(cast):
    def change_that_fails() -> None:
        with transaction.atomic():
            record("a.lost", tenant=cast.acme)  # the process now guesses seq 2, which never happened
            raise RuntimeError("the change failed")

    record("a.kept", tenant=cast.acme)
    with pytest.raises(RuntimeError, match="the change failed"):
        change_that_fails()
    record("a.after", tenant=cast.acme)
    assert list(AuditEvent.objects.filter(chain=cast.acme.pk).order_by("seq").values_list("action", flat=True)) == [
        "a.kept",
        "a.after",
    ]
    _assert_whole_chain(cast.acme, 2)


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param(lambda seq, head: (seq - 1, head), id="behind"),
        pytest.param(lambda seq, head: (seq + 3, head), id="ahead"),
        pytest.param(lambda seq, head: (seq, bytes(32)), id="same-seq-other-hash"),
        pytest.param(lambda seq, head: (seq + 1, bytes(range(32))), id="a-fork-that-never-was"),
    ],
)
def test_a_wrong_guess_is_never_trusted(cast, poison: Callable[[int, bytes], tuple[int, bytes]]):
    # Someone else (another process, a rolled-back caller) moved the chain: whatever
    # this process believes, the event lands right after the real head.
    for index in range(3):
        record("a.before", tenant=cast.acme, target_id=index)
    key = (connection.alias, cast.acme.pk)
    services._heads[key] = poison(*services._heads[key])
    record("a.after", tenant=cast.acme)
    _assert_whole_chain(cast.acme, 4)
    assert AuditEvent.objects.get(chain=cast.acme.pk, seq=4).action == "a.after"


def test_a_guess_of_a_chain_that_has_no_head_yet(cast):
    # A flushed or new database: the guess names a head row that does not exist.
    services._heads[(connection.alias, cast.acme.pk)] = (7, bytes(32))
    record("a.first", tenant=cast.acme)
    _assert_whole_chain(cast.acme, 1)


WRITERS = 3
EVENTS_PER_WRITER = 40


def _race(tenant_pk: int, *, batch: int, meddle: bool) -> None:
    """Several threads (each its own database connection) append to one chain at once."""
    barrier = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        rng = random.Random(number)
        key = ("default", tenant_pk)
        try:
            barrier.wait(timeout=30)
            for first in range(0, EVENTS_PER_WRITER, batch):
                with transaction.atomic() if batch > 1 else nullcontext():
                    for index in range(first, min(EVENTS_PER_WRITER, first + batch)):
                        if meddle and rng.random() < 0.3:
                            # As if this thread were a process of its own whose guess went stale.
                            if rng.random() < 0.5:
                                services._heads.pop(key, None)
                            else:
                                services._heads[key] = (rng.randrange(0, 200), rng.randbytes(32))
                        record("race.append", tenant=tenant_pk, target_id=f"{number}:{index}")
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(number,)) for number in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors


@pytest.mark.parametrize("batch", [1, 10], ids=["autocommit", "transactions-of-10"])
@pytest.mark.parametrize("meddle", [False, True], ids=["shared-guess", "stale-guesses"])
def test_concurrent_writers_on_one_chain_make_one_unbroken_chain(transactional_db, batch: int, meddle: bool):
    tenant = TenantFactory(slug="race", name="Race")
    other = TenantFactory(slug="bystander", name="Bystander")
    record("race.start", tenant=tenant)
    record("bystander.start", tenant=other)
    _race(tenant.pk, batch=batch, meddle=meddle)
    close_old_connections()
    _assert_whole_chain(tenant, 1 + WRITERS * EVENTS_PER_WRITER)
    writes = set(AuditEvent.objects.filter(chain=tenant.pk, action="race.append").values_list("target_id", flat=True))
    assert writes == {f"{n}:{i}" for n in range(WRITERS) for i in range(EVENTS_PER_WRITER)}
    _assert_whole_chain(other, 1)
