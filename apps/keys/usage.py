"""Token use in the database: hourly counts per (client, audience), written once per flushed batch."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from django.db import connection, transaction
from django.utils import timezone

from apps.keys.models import ApiClient, TokenUse, TokenUseBatch

TOKEN_USE_BATCH_KEEP = timedelta(days=3)  # longer than an unflushed claim can live in Redis (2 days)


class TokenUseRow(Protocol):
    """One (client, audience, hour)'s count since the last flush (``apps.api.meter.UseRow`` is one)."""

    client_id: str
    audience: str
    hour: str  # YYYYMMDDHH, UTC
    count: int
    limited: int
    last_ip: str
    last_user_agent: str


def _hour(value: str) -> datetime:
    return datetime.strptime(value, "%Y%m%d%H").replace(tzinfo=UTC)


@transaction.atomic
def token_use_record(*, rows: Sequence[TokenUseRow], batch_id: str) -> int:
    """Add one flushed batch of token-use counts to the hourly rows, once: returns the rows written (0: seen before).

    ``batch_id`` names the claimed Redis hash. It is inserted first, in this
    transaction (``ON CONFLICT DO NOTHING``): a batch that was already written
    (a flush that died before deleting its claim, or a second flusher on the
    same orphaned claim, which waits on the first one's row lock) writes
    nothing. The counts are added with one ``INSERT … ON CONFLICT … DO UPDATE
    SET count = count + EXCLUDED.count`` per batch. Rows of clients that no
    longer exist are dropped. Not audited: counts, not security changes.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TokenUseBatch._meta.db_table} (batch_id, rows, recorded_at)"
            " VALUES (%s, %s, now()) ON CONFLICT (batch_id) DO NOTHING RETURNING batch_id",
            [batch_id[:120], len(rows)],
        )
        if cursor.fetchone() is None:
            return 0
    clients = dict(
        ApiClient.objects.filter(client_id__in={row.client_id for row in rows}).values_list("client_id", "pk")
    )
    tenants = dict(ApiClient.objects.filter(pk__in=clients.values()).values_list("pk", "tenant_id"))
    merged: dict[tuple[int, str, Any], list[Any]] = {}
    for row in rows:
        pk = clients.get(row.client_id)
        if pk is None or row.count <= 0:
            continue
        try:
            hour = _hour(row.hour)
        except ValueError:
            continue
        key = (pk, row.audience[:200], hour)
        entry = merged.setdefault(key, [0, 0, "", ""])
        entry[0] += int(row.count)
        entry[1] += int(row.limited)
        entry[2], entry[3] = (row.last_ip or "")[:45], (row.last_user_agent or "")[:256]
    if merged:
        table = TokenUse._meta.db_table
        values = []
        params: list[Any] = []
        for (pk, audience, hour), (count, limited, ip, agent) in merged.items():
            values.append("(%s, %s, %s, %s, %s, %s, %s, %s, now())")
            params += [tenants[pk], pk, audience, hour, count, limited, ip, agent]
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {table} (tenant_id, client_id, audience, hour, count, limited, last_ip,"
                " last_user_agent, updated_at) VALUES " + ", ".join(values) + " ON CONFLICT (client_id, audience, hour)"
                f" DO UPDATE SET count = {table}.count + EXCLUDED.count, limited = {table}.limited + EXCLUDED.limited,"
                " last_ip = EXCLUDED.last_ip, last_user_agent = EXCLUDED.last_user_agent, updated_at = now()",
                params,
            )
    TokenUseBatch.objects.filter(recorded_at__lt=timezone.now() - TOKEN_USE_BATCH_KEEP).delete()
    return len(merged)
