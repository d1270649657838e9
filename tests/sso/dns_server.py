"""A real DNS server on loopback for the domain-verification tests (dnslib, UDP, random port, in a thread).

Tests publish TXT records with ``local_dns.txt(name, *values)`` (a value may be
a tuple of character-strings, i.e. a split record), make names fail with
``local_dns.servfail(name)`` or go silent with ``local_dns.silent(name)``
(the client times out), and the ``local_dns`` fixture points
``SSO_DNS_NAMESERVER``/``SSO_DNS_PORT`` at the server.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from dnslib import QTYPE, RCODE, RR, TXT, DNSError
from dnslib.server import BaseResolver, DNSLogger, DNSServer


def _key(name: str) -> str:
    return name.lower().rstrip(".") + "."


class LocalDNS(BaseResolver):
    """An authoritative-looking server for whatever names a test publishes; NXDOMAIN for the rest."""

    def __init__(self) -> None:
        self.records: dict[str, list[tuple[bytes, ...]]] = {}
        self.failing: set[str] = set()
        self.silent_names: set[str] = set()
        self.existing: set[str] = set()
        self.queries: list[str] = []
        self._lock = threading.Lock()
        self.server: DNSServer | None = None

    # --- what the test publishes ---
    def txt(self, name: str, *values: str | tuple[str, ...]) -> None:
        strings = [tuple(v.encode() for v in (value if isinstance(value, tuple) else (value,))) for value in values]
        with self._lock:
            self.records.setdefault(_key(name), []).extend(strings)

    def raw_txt(self, name: str, *strings: bytes) -> None:
        with self._lock:
            self.records.setdefault(_key(name), []).append(tuple(strings))

    def exists(self, name: str) -> None:
        """The name exists with no TXT record (NOERROR, empty answer)."""
        self.existing.add(_key(name))

    def clear(self, name: str) -> None:
        with self._lock:
            self.records.pop(_key(name), None)

    def servfail(self, name: str) -> None:
        self.failing.add(_key(name))

    def silent(self, name: str) -> None:
        self.silent_names.add(_key(name))

    # --- dnslib ---
    def resolve(self, request: Any, handler: Any) -> Any:
        reply = request.reply()
        qname = str(request.q.qname).lower()
        self.queries.append(qname)
        if qname in self.silent_names:
            raise DNSError("silent: no answer, the client times out")
        if qname in self.failing:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        with self._lock:
            found = list(self.records.get(qname, []))
        if not found and qname not in self.existing:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if request.q.qtype == QTYPE.TXT:
            for strings in found:
                reply.add_answer(RR(qname, QTYPE.TXT, rdata=TXT(list(strings)), ttl=60))
        return reply

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.server.server_address[1])

    def start(self) -> None:
        quiet = DNSLogger(log="-request,-reply,-truncated,-error,-recv,-send,-data", prefix=False)
        self.server = DNSServer(self, address="127.0.0.1", port=0, logger=quiet)
        self.server.start_thread()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server.server.server_close()


@pytest.fixture
def local_dns(settings: Any) -> Iterator[LocalDNS]:
    """A fresh loopback DNS server, with the SSO domain checks pointed at it."""
    server = LocalDNS()
    server.start()
    settings.SSO_DNS_NAMESERVER = "127.0.0.1"
    settings.SSO_DNS_PORT = server.port
    settings.SSO_DNS_TIMEOUT = 1.0
    try:
        yield server
    finally:
        server.stop()
