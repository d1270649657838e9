"""Readiness checks for /readyz: database and broker, each with a short timeout.

Each check raises on failure; ``readiness()`` reports every check with its
outcome and duration. Errors are reported by exception type only, so a probe
response never leaks a host name, a password or a stack trace.
"""

from __future__ import annotations

import os
import time
from typing import Any

from django.conf import settings
from django.db import connection

BROKER_TIMEOUT_SECONDS = 2.0


class BrokerUnavailableError(RuntimeError):
    """The broker cannot accept messages."""


def _timed(check: Any) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # noqa: BLE001 (any failure means "not ready", reported by type only)
        return {"ok": False, "error": type(exc).__name__, "ms": round((time.perf_counter() - started) * 1000, 1)}
    return {"ok": True, "ms": round((time.perf_counter() - started) * 1000, 1)}


def _database() -> None:
    # The connection has a connect_timeout (settings); SELECT 1 proves it answers queries.
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _filesystem_broker(options: dict[str, Any]) -> None:
    """kombu's filesystem transport: the queue folders must exist and be writable."""
    for key in ("data_folder_in", "data_folder_out", "control_folder"):
        folder = options.get(key)
        if folder and not (os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)):
            raise BrokerUnavailableError(f"{key} is not a writable folder")


def _broker() -> None:
    """Open a fresh connection to the broker (Redis: connect + PING; AMQP: handshake + channel)."""
    from config.celery import app

    url = settings.CELERY_BROKER_URL
    options = dict(getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", None) or {})
    if url.startswith("filesystem"):
        _filesystem_broker(options)
        return
    # Redis honours socket_connect_timeout/socket_timeout; AMQP honours connect_timeout.
    options.update(socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS)
    with app.connection_for_write(
        url, connect_timeout=BROKER_TIMEOUT_SECONDS, transport_options=options, heartbeat=0
    ) as conn:
        # max_retries=0: one attempt, no back-off sleeps; a probe must answer within its own timeout.
        conn.ensure_connection(max_retries=0, timeout=BROKER_TIMEOUT_SECONDS)
        conn.default_channel  # noqa: B018 (opening the channel is the round trip)


def readiness() -> dict[str, dict[str, Any]]:
    return {"database": _timed(_database), "broker": _timed(_broker)}
