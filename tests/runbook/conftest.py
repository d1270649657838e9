"""Helpers for the runbook tests: a runbook opened at a chosen time, and drill clean-up checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest
import time_machine
from django.db import connections
from psycopg import sql

from apps.runbook import services
from apps.runbook.drill import _scratch_name, libpq_params
from apps.runbook.models import Runbook

# Mid-quarter (2026-Q4): runbooks opened "now" belong to 2026-Q4 and review from 2026-Q3's start.
NOW = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def open_at() -> Callable[..., Runbook]:
    """Open ``tenant``'s runbook with the clock at ``at`` (default NOW), as the beat task would."""

    def make(tenant: Any, at: datetime = NOW) -> Runbook:
        with time_machine.travel(at, tick=False):
            runbook = services.runbook_open(tenant=tenant)
        assert runbook is not None
        return runbook

    return make


def drill_databases() -> list[str]:
    """Scratch databases of this test database's restore drills present on the server right now."""
    prefix = _scratch_name(str(connections.databases["default"]["NAME"]), 0)[:-1]
    with psycopg.connect(**libpq_params("postgres"), autocommit=True) as admin:
        rows = admin.execute("SELECT datname FROM pg_database WHERE starts_with(datname, %s)", [prefix]).fetchall()
    return [row[0] for row in rows]


def drop_database(name: str) -> None:
    with psycopg.connect(**libpq_params("postgres"), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def no_leftover_scratch() -> Iterator[None]:
    """The test must leave no scratch database behind (checked after it)."""
    before = set(drill_databases())
    yield
    assert set(drill_databases()) - before == set(), "a restore drill left its scratch database behind"
