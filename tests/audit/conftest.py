"""Helpers for the audit tests: recording events at chosen times, and tampering by raw SQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any
from unittest import mock

import pytest
from django.db import connection

from apps.audit.models import AuditEvent
from apps.audit.services import Actor, record
from apps.core import context

EVENT_COLUMNS = (
    "chain, seq, occurred_at, tenant_id, actor_type, actor_id, actor_display, action, target_type, "
    "target_id, result, ip, user_agent, request_id, metadata, prev_hash, hash"
)


@pytest.fixture
def record_at() -> Callable[..., int]:
    """record() with the clock fixed at ``at`` (or the real clock when ``at`` is None)."""

    def make(action: str, *, at: datetime | None = None, **kwargs: Any) -> int:
        if at is None:
            return record(action, **kwargs)
        with mock.patch("django.utils.timezone.now", return_value=at):
            return record(action, **kwargs)

    return make


@pytest.fixture
def chain_of(cast: Any) -> Callable[..., list[AuditEvent]]:
    """Record ``n`` events in a tenant's chain (acme by default); returns them in seq order."""

    def make(n: int, tenant: Any = None, action: str = "member.invite") -> list[AuditEvent]:
        tenant = cast.acme if tenant is None else tenant
        actor = Actor.for_user(cast.owner)
        with context.bind(ip="192.0.2.10", user_agent="pytest", user_id=cast.owner.pk):
            for index in range(n):
                record(action, tenant=tenant, actor=actor, target_type="membership", target_id=index)
        return list(AuditEvent.objects.for_tenant(tenant).order_by("seq"))

    return make


AUDIT_TABLES = ("audit_auditevent", "audit_auditseal", "audit_auditchainhead", "audit_auditretentioncut")


class Tamper:
    """Raw SQL with every audit trigger disabled for the statement (inside the test's transaction).

    Plays the one attacker the database cannot stop: the owner of the audit
    tables (or a superuser), who may switch triggers off. What such a person
    changes is for verification (HMAC links, seals) to catch.
    """

    @contextmanager
    def off(self) -> Iterator[None]:
        """Triggers off inside the block (ORM writes too), back on after it."""
        self._switch("DISABLE")
        try:
            yield
        finally:
            self._switch("ENABLE")

    def _switch(self, verb: str) -> None:
        with connection.cursor() as cursor:
            # Deferred foreign-key checks of rows created earlier in the test must
            # fire first: ALTER TABLE refuses to run with trigger events pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for table in AUDIT_TABLES:
                cursor.execute(f"ALTER TABLE {table} {verb} TRIGGER USER")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")

    def sql(self, query: str, params: list[Any] | tuple[Any, ...] = ()) -> Any:
        with self.off(), connection.cursor() as cursor:
            cursor.execute(query, params)
            return cursor.fetchone() if cursor.description else None

    def insert_event(self, **values: Any) -> int:
        placeholders = ", ".join(["%s"] * 17)
        columns = [column.strip() for column in EVENT_COLUMNS.split(",")]
        params = [values[column] for column in columns]
        return self.sql(f"INSERT INTO audit_auditevent ({EVENT_COLUMNS}) VALUES ({placeholders}) RETURNING id", params)[
            0
        ]


@pytest.fixture
def tamper(db: None) -> Tamper:
    """The table owner's raw SQL; the test transaction's rollback undoes it all."""
    return Tamper()
