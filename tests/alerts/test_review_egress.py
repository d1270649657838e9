"""Host names are judged by what they resolve to, at save time and again at every delivery (DNS rebinding)."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.core.exceptions import ValidationError

from apps.accounts.services import record_sign_in_failure
from apps.alerts.models import Delivery, DeliveryAttempt, Metric, WebhookEndpoint
from apps.alerts.services import delivery as delivery_service
from apps.alerts.services import evaluation, rules
from tests.alerts.helpers import threshold_rule

pytestmark = pytest.mark.django_db

PUBLIC = "93.184.216.34"


@pytest.fixture
def dns(monkeypatch):
    """A fake resolver for names under .example (the only thing outside the machine: DNS)."""
    answers: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, *args, **kwargs):
        if host in answers:
            family = lambda a: socket.AF_INET6 if ":" in a else socket.AF_INET  # noqa: E731
            return [(family(a), socket.SOCK_STREAM, 6, "", (a, port)) for a in answers[host]]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.mark.parametrize(
    "addresses",
    [
        ["10.0.0.5"],
        ["169.254.169.254"],
        ["127.0.0.1"],
        ["fd00::1"],
        ["fe80::1"],
        ["::ffff:192.168.0.1"],
        [PUBLIC, "10.0.0.5"],  # one bad answer among good ones is enough to refuse
    ],
)
def test_a_name_resolving_to_a_refused_address_is_a_form_error(cast, dns, addresses) -> None:
    dns["hooks.example"] = addresses
    with pytest.raises(ValidationError) as caught:
        rules.endpoint_create(tenant=cast.acme, actor=None, name="x", url="https://hooks.example/in")
    assert "private or reserved" in caught.value.message_dict["url"][0]
    assert not WebhookEndpoint.objects.exists()


def test_a_name_that_rebinds_after_saving_is_refused_at_delivery_and_nothing_is_sent(cast, dns, monkeypatch) -> None:
    dns["hooks.example"] = [PUBLIC]
    rules.endpoint_create(tenant=cast.acme, actor=None, name="x", url="https://hooks.example/in")
    rule = threshold_rule(cast.acme, Metric.SIGN_IN_FAILURES, threshold="1", min_volume=1)
    record_sign_in_failure(identifier=cast.member.email)
    record_sign_in_failure(identifier=cast.member.email)
    alert = evaluation.rule_evaluate(rule_id=rule.pk).row
    pending = Delivery.objects.get(alert=alert, channel=Delivery.Channel.WEBHOOK)

    def no_request(*args, **kwargs):
        raise AssertionError("no connection may be opened to a refused address")

    monkeypatch.setattr(requests.Session, "request", no_request)
    dns["hooks.example"] = ["169.254.169.254"]
    outcome = delivery_service.delivery_attempt(delivery_id=pending.pk)
    assert outcome.claimed
    assert not outcome.ok
    attempt = DeliveryAttempt.objects.get(delivery=pending)
    assert "private or reserved" in attempt.error


class _ChattyReceiver(BaseHTTPRequestHandler):
    """Answers 200 with a sizeable HTML page, as receivers behind some gateways do."""

    hits = 0

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).hits += 1
        page = b"<html>" + b"accepted " * 8000 + b"</html>"  # ~70 KiB
        self.send_response(200)
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args) -> None:
        pass


def test_a_2xx_answer_with_a_large_body_is_delivered_once_not_retried(cast, settings) -> None:
    settings.ALERTS_WEBHOOK_ALLOW_LOOPBACK = True
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ChattyReceiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        rules.endpoint_create(tenant=cast.acme, actor=None, name="chatty", url=url)
        rule = threshold_rule(cast.acme, Metric.SIGN_IN_FAILURES, threshold="1", min_volume=1)
        record_sign_in_failure(identifier=cast.member.email)
        record_sign_in_failure(identifier=cast.member.email)
        alert = evaluation.rule_evaluate(rule_id=rule.pk).row
        pending = Delivery.objects.get(alert=alert, channel=Delivery.Channel.WEBHOOK)
        outcome = delivery_service.delivery_attempt(delivery_id=pending.pk)
    finally:
        server.shutdown()
        server.server_close()
    assert outcome.ok
    assert Delivery.objects.get(pk=pending.pk).status == Delivery.Status.DELIVERED
    assert _ChattyReceiver.hits == 1
