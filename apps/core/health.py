"""Readiness checks for /readyz: database and broker, each with a short timeout."""

from __future__ import annotations

import time
from typing import Any

from django.db import connection

BROKER_TIMEOUT_SECONDS = 2.0


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 (any failure means "not ready", reported by type only)
        return {"ok": False, "error": type(exc).__name__, "ms": round((time.perf_counter() - started) * 1000, 1)}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _broker() -> None:
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)


def readiness() -> dict[str, dict[str, Any]]:
    return {"database": _timed(_database), "broker": _timed(_broker)}
