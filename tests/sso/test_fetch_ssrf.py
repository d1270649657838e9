"""The SSO fetcher from an attacker's side: DNS rebinding, internal addresses, odd ports, big and bouncing answers.

A tenant admin chooses the OIDC issuer and the SAML metadata URL, and the IdP's
discovery document chooses the JWKS and token URLs. None of them may make the
server connect to an internal address. ``socket.getaddrinfo`` is replaced by a
resolver the attacker controls, and ``socket.socket.connect`` records every
address the server really tries to reach (and refuses, so nothing leaves the
machine).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from pytest_django.fixtures import Settings

from apps.core import netfetch
from apps.sso import oidc
from apps.sso.saml import fetch_idp_metadata
from apps.sso.types import SSOConfigError, SSOError

PUBLIC = "93.184.216.34"
PRODUCTION = netfetch.FetchPolicy()
LOOPBACK = netfetch.FetchPolicy(allow_loopback=True)


def _info(address: str, port: int) -> list[tuple]:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sockaddr = (address, port, 0, 0) if family == socket.AF_INET6 else (address, port)
    return [(family, socket.SOCK_STREAM, 6, "", sockaddr)]


class Attacker:
    """A DNS server and a network the attacker shapes: answers per name, in order; connects recorded."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.answers: dict[str, list[str | Exception]] = {}
        self.lookups: list[str] = []
        self.connects: list[str] = []
        real_getaddrinfo = socket.getaddrinfo
        real_connect = socket.socket.connect

        def getaddrinfo(host: str, port: object, *args: object, **kwargs: object) -> list:
            name = host.decode() if isinstance(host, bytes) else str(host)
            if name in self.answers:
                self.lookups.append(name)
                queue = self.answers[name]
                answer = queue.pop(0) if len(queue) > 1 else queue[0]
                if isinstance(answer, Exception):
                    raise answer
                return _info(answer, int(port or 0))  # type: ignore[call-overload]
            return real_getaddrinfo(host, port, *args, **kwargs)  # type: ignore[arg-type]

        def connect(sock: socket.socket, address: object) -> None:
            host = address[0] if isinstance(address, tuple) else str(address)
            if host in ("127.0.0.1", "::1") and self.allow_local_connects:
                return real_connect(sock, address)  # type: ignore[arg-type]
            self.connects.append(host)
            raise ConnectionRefusedError(111, "refused by the test network")

        self.allow_local_connects = False
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def attacker(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Attacker:
    settings.DEBUG = False
    settings.SSO_ALLOW_INSECURE_LOOPBACK = False  # production rules
    settings.SSO_FETCH_ALLOW_PRIVATE = False
    oidc.clear_jwks_cache()
    return Attacker(monkeypatch)


# --- DNS rebinding --------------------------------------------------------------------------------


def test_rebinding_name_is_connected_to_at_the_checked_address_only(attacker: Attacker) -> None:
    attacker.answers["idp.rebind.example"] = [PUBLIC, "127.0.0.1"]

    with pytest.raises(netfetch.FetchError) as caught:
        netfetch.fetch("GET", "https://idp.rebind.example/x", max_bytes=1024, timeout=2, policy=PRODUCTION)

    assert caught.value.code == "connect"
    assert attacker.connects == [PUBLIC]  # pinned: the second answer (127.0.0.1) is never used
    assert attacker.lookups == ["idp.rebind.example"]  # resolved once


def test_oidc_discovery_never_follows_a_rebinding_answer_to_loopback(attacker: Attacker) -> None:
    attacker.answers["idp.rebind.example"] = [PUBLIC, "127.0.0.1"]

    with pytest.raises(SSOConfigError, match="could not be reached"):
        oidc.discover("https://idp.rebind.example", timeout=2)

    assert "127.0.0.1" not in attacker.connects
    assert attacker.connects == [PUBLIC]


def test_saml_metadata_never_follows_a_rebinding_answer_to_the_metadata_service(attacker: Attacker) -> None:
    attacker.answers["idp.rebind.example"] = [PUBLIC, "169.254.169.254"]

    with pytest.raises(SSOConfigError, match="could not be reached"):
        fetch_idp_metadata("https://idp.rebind.example/metadata", timeout=2)

    assert attacker.connects == [PUBLIC]


def test_jwks_and_token_calls_use_the_same_pinned_fetcher(attacker: Attacker) -> None:
    attacker.answers["keys.rebind.example"] = [PUBLIC, "127.0.0.1"]

    with pytest.raises(SSOError) as caught:
        oidc.binding._signing_keys("https://keys.rebind.example/jwks", timeout=2)

    assert caught.value.code == "network"
    assert attacker.connects == [PUBLIC]


def test_a_name_that_fails_to_resolve_first_is_refused_not_retried(attacker: Attacker) -> None:
    attacker.answers["idp.flaky.example"] = [socket.gaierror(-2, "Name or service not known"), "127.0.0.1"]

    with pytest.raises(SSOConfigError, match="could not be resolved"):
        oidc.discover("https://idp.flaky.example", timeout=2)

    assert attacker.connects == []


# --- internal addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",  # cloud metadata service
        "127.0.0.1",
        "10.0.0.8",
        "192.168.1.1",
        "172.16.0.1",
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.1",  # "this network": reaches local services on Linux
        "0.0.0.0",  # noqa: S104 -- an address the attacker answers, not one we bind to
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "2002:a9fe:a9fe::1",  # 6to4 of 169.254.169.254
        "::",
    ],
)
def test_names_resolving_to_internal_addresses_are_refused_without_connecting(attacker: Attacker, address: str) -> None:
    attacker.answers["idp.evil.example"] = [address]

    with pytest.raises(netfetch.FetchError) as caught:
        netfetch.fetch("GET", "https://idp.evil.example/", max_bytes=1024, timeout=2, policy=PRODUCTION)

    assert caught.value.code == "address"
    assert attacker.connects == []


def test_one_internal_address_among_public_ones_is_enough_to_refuse(attacker: Attacker, monkeypatch) -> None:
    def two_answers(host: str, port: object, *args: object, **kwargs: object) -> list:
        return _info(PUBLIC, 443) + _info("10.0.0.8", 443)

    monkeypatch.setattr(socket, "getaddrinfo", two_answers)

    with pytest.raises(SSOConfigError, match="private or reserved"):
        oidc.discover("https://idp.mixed.example", timeout=2)
    assert attacker.connects == []


@pytest.mark.parametrize("url", ["https://169.254.169.254/latest/meta-data/", "https://[::ffff:a9fe:a9fe]/"])
def test_metadata_service_literals_are_refused_even_with_private_networks_allowed(
    attacker: Attacker, settings: Settings, url: str
) -> None:
    settings.SSO_FETCH_ALLOW_PRIVATE = True

    with pytest.raises(SSOConfigError, match="private or local"):
        fetch_idp_metadata(url, timeout=2)
    assert attacker.connects == []


def test_private_networks_are_reachable_only_with_the_one_setting(attacker: Attacker, settings: Settings) -> None:
    attacker.answers["idp.corp.example"] = ["10.0.0.8"]

    with pytest.raises(SSOConfigError, match="private or reserved"):
        oidc.discover("https://idp.corp.example", timeout=2)
    assert attacker.connects == []

    settings.SSO_FETCH_ALLOW_PRIVATE = True
    with pytest.raises(SSOConfigError, match="could not be reached"):
        oidc.discover("https://idp.corp.example", timeout=2)
    assert attacker.connects == ["10.0.0.8"]  # now it tried (and our test network refused)


# --- ports ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["https://idp.public.example:6379/", "https://idp.public.example:22/", "https://idp.public.example:80/"]
)
def test_ports_other_than_443_are_refused_without_connecting(attacker: Attacker, url: str) -> None:
    attacker.answers["idp.public.example"] = [PUBLIC]

    with pytest.raises(SSOConfigError, match="uses port"):
        oidc.discover(url.rstrip("/"), timeout=2)
    with pytest.raises(SSOConfigError, match="uses port"):
        fetch_idp_metadata(url, timeout=2)
    assert attacker.connects == []


def test_port_443_written_out_is_the_default_port(attacker: Attacker) -> None:
    attacker.answers["idp.public.example"] = [PUBLIC]

    with pytest.raises(netfetch.FetchError) as caught:
        netfetch.fetch("GET", "https://idp.public.example:443/", max_bytes=1024, timeout=2, policy=PRODUCTION)
    assert caught.value.code == "connect"
    assert attacker.connects == [PUBLIC]


# --- what a (loopback) server sends back ---------------------------------------------------------


class Server:
    """A plain http server on 127.0.0.1; ``handler(request)`` sets (status, headers, body) per path."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.hits: list[str] = []
        routes, hits = self.routes, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.append(self.path)
                status, headers, body = routes.get(self.path, (404, {}, b""))
                try:
                    self.send_response(status)
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture
def server(attacker: Attacker) -> Iterator[Server]:
    attacker.allow_local_connects = True
    running = Server()
    running.thread.start()
    yield running
    running.server.shutdown()
    running.server.server_close()


def _get(url: str, **kwargs: object) -> Callable[[], netfetch.FetchResponse]:
    return lambda: netfetch.fetch("GET", url, max_bytes=1024, timeout=2, policy=LOOPBACK, **kwargs)  # type: ignore[arg-type]


def test_an_oversized_body_is_cut_off_while_streaming(server: Server) -> None:
    server.routes["/big"] = (200, {}, b"x" * 5000)  # no Content-Length: the body ends at close

    with pytest.raises(netfetch.FetchError) as caught:
        _get(server.url("/big"))()
    assert caught.value.code == "too_large"


def test_a_compressed_body_is_refused(server: Server) -> None:
    server.routes["/gz"] = (200, {"Content-Encoding": "gzip", "Content-Length": "3"}, b"abc")

    with pytest.raises(netfetch.FetchError) as caught:
        _get(server.url("/gz"))()
    assert caught.value.code == "encoding"


@pytest.mark.parametrize(
    ("location", "code"),
    [
        ("https://169.254.169.254/latest/meta-data/", "address"),
        ("https://internal.evil.example/", "address"),
        ("https://idp.public.example:6379/", "port"),
        ("gopher://idp.public.example/", "scheme"),
        ("http://idp.public.example/", "scheme"),
    ],
)
def test_every_redirect_hop_is_checked_again(server: Server, attacker: Attacker, location: str, code: str) -> None:
    attacker.answers["internal.evil.example"] = ["10.1.2.3"]
    attacker.answers["idp.public.example"] = [PUBLIC]
    server.routes["/bounce"] = (302, {"Location": location, "Content-Length": "0"}, b"")

    with pytest.raises(netfetch.FetchError) as caught:
        _get(server.url("/bounce"), max_redirects=3)()
    assert caught.value.code == code
    assert attacker.connects == []


def test_oidc_calls_follow_no_redirect_at_all(server: Server, settings: Settings) -> None:
    settings.SSO_ALLOW_INSECURE_LOOPBACK = True
    server.routes["/.well-known/openid-configuration"] = (302, {"Location": "/elsewhere", "Content-Length": "0"}, b"")

    with pytest.raises(SSOConfigError, match="redirects elsewhere"):
        oidc.discover(server.url(""), timeout=2)
    assert server.hits == ["/.well-known/openid-configuration"]


def test_a_redirect_to_the_same_place_is_followed_within_the_limit(server: Server) -> None:
    server.routes["/old"] = (302, {"Location": "/new", "Content-Length": "0"}, b"")
    server.routes["/new"] = (200, {"Content-Length": "2"}, b"ok")

    response = _get(server.url("/old"), max_redirects=1)()
    assert (response.status, response.body, response.url) == (200, b"ok", server.url("/new"))
