"""Token use reaches the database exactly once per counted call, whatever crashes between claim and delete."""

from __future__ import annotations

import time

import pytest

from apps.api import meter, tasks
from apps.keys import services
from apps.keys.models import TokenUse, TokenUseBatch
from tests.keys.helpers import make_client


@pytest.fixture(autouse=True)
def _empty_redis() -> None:
    r = meter.client()
    for pattern in (meter.USE_PREFIX + "*", meter.FLUSHING_PREFIX + "*"):
        for key in r.scan_iter(match=pattern):
            r.delete(key)
    meter.forget_leases()


def _count(client_id: str, n: int, *, ip: str = "10.0.0.1", agent: str = "agent/1") -> None:
    """What n API calls leave in Redis (the face's pipeline, without the bucket)."""
    key, field = meter.hour_key(), meter.use_field(client_id, "https://bastion.test/api/v1")
    meter.client().hincrby(key, field + "|n", n)
    meter.client().hset(key, mapping={field + "|ip": ip, field + "|ua": agent})


def _total(client) -> int:
    return sum(TokenUse.objects.filter(client=client).values_list("count", flat=True))


def _record(batch_id: str, rows) -> None:
    services.token_use_record(rows=rows, batch_id=batch_id)


def test_counts_are_added_per_client_audience_and_hour(cast) -> None:
    created = make_client(tenant=cast.acme)
    _count(created.client.client_id, 3)
    meter.drain(_record)
    _count(created.client.client_id, 4, ip="10.0.0.2", agent="agent/2")
    meter.drain(_record)
    row = TokenUse.objects.get(client=created.client)
    assert (row.count, row.last_ip, row.last_user_agent, row.tenant_id) == (7, "10.0.0.2", "agent/2", cast.acme.pk)
    assert row.hour.minute == 0
    assert row.hour.timestamp() <= time.time()


def test_a_replayed_batch_is_not_counted_twice(cast) -> None:
    created = make_client(tenant=cast.acme)
    rows = [
        meter.UseRow(created.client.client_id, "aud", time.strftime("%Y%m%d%H", time.gmtime()), 5, 0, "1.2.3.4", "x")
    ]
    assert services.token_use_record(rows=rows, batch_id="b-1") == 1
    assert services.token_use_record(rows=rows, batch_id="b-1") == 0
    assert _total(created.client) == 5


def test_a_flush_that_dies_after_the_write_and_before_the_delete_counts_once(cast) -> None:
    created = make_client(tenant=cast.acme)
    _count(created.client.client_id, 5)

    def write_then_crash(batch_id: str, rows) -> None:
        _record(batch_id, rows)  # committed (the service is atomic)
        raise RuntimeError("worker killed before DEL")

    with pytest.raises(RuntimeError):
        meter.drain(write_then_crash)
    assert _total(created.client) == 5
    meter.drain(_record)  # the next flush finds the leftover claim: the writer skips it, Redis lets it go
    assert _total(created.client) == 5
    assert not list(meter.client().scan_iter(match=meter.FLUSHING_PREFIX + "*"))


def test_a_flush_that_dies_before_the_write_loses_nothing(cast) -> None:
    created = make_client(tenant=cast.acme)
    _count(created.client.client_id, 2)

    def crash(batch_id: str, rows) -> None:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError):
        meter.drain(crash)
    _count(created.client.client_id, 1)  # new calls meanwhile start a fresh hash
    meter.drain(_record)
    assert _total(created.client) == 3


def test_counts_of_a_deleted_client_are_dropped(cast) -> None:
    rows = [meter.UseRow("bc_gone", "aud", "2026120609", 5, 0, "", "")]
    assert services.token_use_record(rows=rows, batch_id="b-gone") == 0
    assert TokenUseBatch.objects.filter(batch_id="b-gone").exists()


@pytest.mark.celery
def test_the_beat_task_on_a_real_worker_writes_each_claim_once(cast, celery_worker, wait_for) -> None:
    created = make_client(tenant=cast.acme)
    # A claim an earlier flush already wrote but did not delete, and fresh counts.
    _count(created.client.client_id, 5)
    with pytest.raises(RuntimeError):
        meter.drain(lambda batch_id, rows: (_record(batch_id, rows), (_ for _ in ()).throw(RuntimeError())))
    _count(created.client.client_id, 2)
    tasks.flush_token_use.delay()
    tasks.flush_token_use.delay()  # two flushes at once (beat late, a manual run)
    r = meter.client()
    wait_for(
        lambda: not list(r.scan_iter(match=meter.FLUSHING_PREFIX + "*"))
        and not list(r.scan_iter(match=meter.USE_PREFIX + "*"))
    )
    time.sleep(0.5)  # let the second task finish too
    assert _total(created.client) == 7
