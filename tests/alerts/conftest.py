from __future__ import annotations

import pytest

from tests.alerts.helpers import Receiver


@pytest.fixture
def fast_delivery(settings):
    """Loopback receivers allowed (tests only), short waits, three attempts."""
    settings.ALERTS_WEBHOOK_ALLOW_LOOPBACK = True
    settings.ALERTS_DELIVERY_BACKOFF_SECONDS = 0.3
    settings.ALERTS_DELIVERY_MAX_ATTEMPTS = 3
    settings.ALERTS_WEBHOOK_TIMEOUT_SECONDS = 0.6
    return settings


@pytest.fixture
def receiver():
    made: list[Receiver] = []

    def start(plan=None, hang_seconds: float = 3.0) -> Receiver:
        r = Receiver(plan=list(plan or [200]), hang_seconds=hang_seconds).start()
        made.append(r)
        return r

    yield start
    for r in made:
        r.stop()
