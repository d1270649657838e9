"""A fake of Stripe's HTTP API on loopback: the SDK talks real HTTP to it (never a mocked SDK function).

A threaded ``http.server`` answers the few endpoints Bastion calls with JSON shaped like the
shared fixtures (``../shared/fixtures/stripe``), and records every request (method, path,
headers, the form-decoded body) so tests can assert what Bastion sent. ``fail_next`` makes
the next call answer with a Stripe error body.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import pytest
from django.test import override_settings

from tests.billing.conftest import resource

SECRET_KEY = "sk_test_fake_0123456789"


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    form: dict[str, str]


@dataclass
class FakeStripe:
    base: str = ""
    calls: list[Call] = field(default_factory=list)
    fail_next: tuple[int, dict[str, Any]] | None = None
    payment_methods: dict[str, dict[str, Any]] = field(default_factory=dict)
    session_url: str | None = None  # answer sessions with this URL instead of Stripe's
    # Idempotency: Stripe answers a repeated key with the first response.
    seen_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def posts(self, path: str) -> list[Call]:
        return [c for c in self.calls if c.method == "POST" and c.path == path]

    def respond(self, method: str, path: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, Any]:
        with self.lock:
            self.calls.append(Call(method, path, headers, form))
            if self.fail_next is not None:
                status, body = self.fail_next
                self.fail_next = None
                return status, body
            key = headers.get("idempotency-key")
            if method == "POST" and key and key in self.seen_keys:
                return 200, self.seen_keys[key]
            status, body = self._route(method, path, form)
            if method == "POST" and key and status == 200:
                self.seen_keys[key] = body
            return status, body

    def _route(self, method: str, path: str, form: dict[str, str]) -> tuple[int, Any]:
        if method == "POST" and path == "/v1/checkout/sessions":
            session = resource("checkout.session")
            sid = f"cs_test_{uuid.uuid4().hex}"
            session.update(
                id=sid,
                url=self.session_url or f"https://checkout.stripe.com/c/pay/{sid}",
                mode=form.get("mode"),
                client_reference_id=form.get("client_reference_id"),
                customer=form.get("customer"),
                customer_email=form.get("customer_email"),
                success_url=form.get("success_url"),
                cancel_url=form.get("cancel_url"),
                status="open",
            )
            return 200, session
        if method == "POST" and path == "/v1/billing_portal/sessions":
            sid = f"bps_{uuid.uuid4().hex[:24]}"
            return 200, {
                "id": sid,
                "object": "billing_portal.session",
                "configuration": "bpc_test_1",
                "created": 1721954054,
                "customer": form.get("customer"),
                "flow": None,
                "livemode": False,
                "locale": None,
                "on_behalf_of": None,
                "return_url": form.get("return_url"),
                "url": self.session_url or f"https://billing.stripe.com/p/session/test_{sid}",
            }
        if method == "GET" and path.startswith("/v1/subscriptions/"):
            sub = resource("subscription")
            sub["id"] = path.rsplit("/", 1)[1]
            sub["items"]["data"][0]["id"] = "si_fake_item_1"
            return 200, sub
        if method == "GET" and path.startswith("/v1/payment_methods/"):
            pm_id = path.rsplit("/", 1)[1]
            if pm_id in self.payment_methods:
                return 200, self.payment_methods[pm_id]
            return 404, _error("resource_missing", f"No such PaymentMethod: '{pm_id}'", "invalid_request_error")
        return 404, _error("resource_missing", f"Unrecognized request URL ({method}: {path})", "invalid_request_error")


def _error(code: str, message: str, kind: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "type": kind}}


def card(pm_id: str, *, brand: str = "visa", last4: str = "4242", exp: tuple[int, int] = (12, 2030)) -> dict:
    return {
        "id": pm_id,
        "object": "payment_method",
        "type": "card",
        "customer": None,
        "created": 1721954054,
        "livemode": False,
        "metadata": {},
        "billing_details": {"email": None, "name": None, "phone": None, "address": {}},
        "card": {"brand": brand, "last4": last4, "exp_month": exp[0], "exp_year": exp[1], "country": "US"},
    }


def _handler(fake: FakeStripe) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            path, _, query = self.path.partition("?")
            form = dict(parse_qsl(raw or query, keep_blank_values=True))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = fake.respond(self.command, path, form, headers)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._answer()

        def do_POST(self) -> None:
            self._answer()

        def log_message(self, *args: Any) -> None:  # quiet test output
            return

    return Handler


@pytest.fixture(name="fake_stripe")
def fake_stripe_fixture() -> Iterator[FakeStripe]:
    """A running fake; settings point the SDK at it with a test key."""
    fake = FakeStripe()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    fake.base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with override_settings(STRIPE_SECRET_KEY=SECRET_KEY, STRIPE_API_BASE=fake.base):
            yield fake
    finally:
        server.shutdown()
        server.server_close()
