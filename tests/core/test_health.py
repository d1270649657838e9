"""/healthz (process up) and /readyz (database and broker reachable, 503 with details otherwise)."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from django.db import OperationalError

from apps.core import health

pytestmark = pytest.mark.django_db


def test_healthz_touches_nothing(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert "no-cache" in response["Cache-Control"]


def test_healthz_refuses_post(client):
    assert client.post("/healthz").status_code == 405


def test_readyz_ok_with_real_database_and_broker(client):
    """Uses the test settings' real broker (Redis db 15, or RabbitMQ when make test chose it)."""
    response = client.get("/readyz")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["broker"]["ok"] is True
    assert "no-cache" in response["Cache-Control"]


@pytest.mark.parametrize("url", ["redis://127.0.0.1:1/0", "amqp://guest:guest@127.0.0.1:1//"])
def test_readyz_503_when_broker_port_is_closed(client, settings, url):
    settings.CELERY_BROKER_URL = url
    started = time.monotonic()
    response = client.get("/readyz")
    assert time.monotonic() - started < health.BROKER_TIMEOUT_SECONDS + 1
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["broker"] == {"ok": False, "error": "OperationalError", "ms": pytest.approx(0, abs=2000)}
    assert body["checks"]["database"]["ok"] is True
    assert "127.0.0.1" not in response.content.decode()  # type names only, no addresses


@pytest.fixture
def silent_server():
    """A TCP port that accepts connections and never answers (a hung broker)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_readyz_gives_up_on_a_hung_broker_within_the_timeout(client, settings, silent_server):
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{silent_server}/0"
    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert elapsed < health.BROKER_TIMEOUT_SECONDS + 1.5


def test_readyz_filesystem_broker_checks_its_folders(client, settings, tmp_path):
    queue = tmp_path / "queue"
    control = tmp_path / "control"
    queue.mkdir()
    control.mkdir()
    settings.CELERY_BROKER_URL = "filesystem://localhost/"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
        "control_folder": str(control),
    }
    assert client.get("/readyz").status_code == 200

    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {**settings.CELERY_BROKER_TRANSPORT_OPTIONS, "data_folder_in": "/nope"}
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["error"] == "BrokerUnavailableError"


def test_readyz_503_when_database_fails(client, monkeypatch):
    def broken() -> None:
        raise OperationalError("connection refused: password=hunter2 host=db.internal")

    monkeypatch.setattr(health, "_database", broken)
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["ok"] is False
    assert body["checks"]["database"]["error"] == "OperationalError"
    assert body["checks"]["broker"]["ok"] is True
    assert "hunter2" not in response.content.decode()
    assert "db.internal" not in response.content.decode()


def test_readyz_is_public(client):
    """Probes carry no session: neither endpoint redirects to sign-in."""
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)


def test_pages_show_the_request_id_they_answer_with(client) -> None:
    """The footer names the same request id as the X-Request-ID header (support asks for it)."""
    response = client.get("/accounts/login/", HTTP_X_REQUEST_ID="abc123def456")
    assert response["X-Request-ID"] == "abc123def456"
    assert b"request abc123def456" in response.content
