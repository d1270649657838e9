"""Shared pieces of the alerts tests: usage rows, a loopback webhook receiver, rule shortcuts."""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django.utils import timezone

from apps.alerts.models import AlertRule
from apps.alerts.services import rules
from apps.billing.models import UsageEvent

_keys = itertools.count(1)


def usage(
    tenant: Any,
    client: Any,
    *,
    at: datetime | None = None,
    cost: str = "0.01",
    input_tokens: int = 100,
    output_tokens: int = 50,
    context_tokens: int = 0,
    tool_calls: list[str] | None = None,
    prompt_hash: str = "",
    n: int = 1,
) -> None:
    """``n`` accepted usage events of ``client`` received at ``at`` (now by default)."""
    when = at or timezone.now()
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                tenant=tenant,
                client=client,
                model_name="openai/gpt-test",
                input_tokens=input_tokens,
                output_tokens=output_tokens,
                context_tokens=context_tokens,
                tool_calls=tool_calls or [],
                cost=Decimal(cost),
                currency="EUR",
                prompt_hash=prompt_hash,
                idempotency_key=f"test-{next(_keys)}",
                occurred_at=when,
                received_at=when,
            )
            for _ in range(n)
        ]
    )


def threshold_rule(tenant: Any, metric: str, *, threshold: str, min_volume: int = 1, **extra: Any) -> AlertRule:
    return rules.rule_create(
        tenant=tenant,
        actor=None,
        name=extra.pop("name", f"{metric} rule"),
        metric=metric,
        mode=AlertRule.Mode.THRESHOLD,
        threshold=Decimal(threshold),
        min_volume=min_volume,
        **extra,
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: answers each request with the next of ``plan`` (a status or "hang")."""

    plan: list[Any] = field(default_factory=lambda: [200])
    hang_seconds: float = 3.0
    received: list[Received] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                index = len(outer.received)
                outer.received.append(Received(self.path, dict(self.headers.items()), body, time.monotonic()))
                step = outer.plan[min(index, len(outer.plan) - 1)]
                if step == "hang":
                    time.sleep(outer.hang_seconds)
                    step = 200
                self.send_response(int(step))
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def hours_ago(n: float) -> datetime:
    return timezone.now() - timedelta(hours=n)
