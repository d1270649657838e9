"""The alerts app's settings, read at call time (tests override them), with the defaults of base.py."""

from __future__ import annotations

from django.conf import settings

from apps.core.netfetch import FetchPolicy


def max_attempts() -> int:
    return max(1, int(getattr(settings, "ALERTS_DELIVERY_MAX_ATTEMPTS", 6)))


def backoff_seconds(attempt: int) -> float:
    """Wait before attempt ``attempt + 1``: base × 2^(attempt − 1), at most an hour (30 s, 1, 2, 4, 8 min…)."""
    base = float(getattr(settings, "ALERTS_DELIVERY_BACKOFF_SECONDS", 30))
    return min(base * 2 ** max(0, attempt - 1), 3600.0)


def webhook_timeout() -> float:
    return float(getattr(settings, "ALERTS_WEBHOOK_TIMEOUT_SECONDS", 10))


def secret_overlap_hours() -> int:
    return int(getattr(settings, "ALERTS_WEBHOOK_SECRET_OVERLAP_HOURS", 24))


def webhook_policy() -> FetchPolicy:
    """Where alert webhooks may go: the fetcher's production defaults unless the installation opens more.

    Public https on the allowed ports only; private networks with
    ``ALERTS_WEBHOOK_ALLOW_PRIVATE`` (an on-premises receiver), loopback and
    plain http to it with ``ALERTS_WEBHOOK_ALLOW_LOOPBACK`` (development and
    tests only). Link-local, metadata and reserved addresses never.
    """
    return FetchPolicy(
        allow_private=bool(getattr(settings, "ALERTS_WEBHOOK_ALLOW_PRIVATE", False)),
        allow_loopback=bool(getattr(settings, "ALERTS_WEBHOOK_ALLOW_LOOPBACK", False)),
        allowed_ports=frozenset(int(p) for p in getattr(settings, "ALERTS_WEBHOOK_ALLOWED_PORTS", (443,))),
    )
