"""Fetching IdP metadata from a real local HTTP server, and the periodic refresh of a connection."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pytest_django.fixtures import Settings

from apps.audit.models import AuditEvent
from apps.sso.models import SSOConnection
from apps.sso.saml import fetch_idp_metadata
from apps.sso.saml.metadata import MAX_METADATA_BYTES, parse_certificate
from apps.sso.services.metadata_refresh import connection_metadata_refresh
from apps.sso.tasks import refresh_all_saml_metadata, refresh_saml_metadata
from apps.sso.types import SSOConfigError
from tests.sso import saml_helpers as h

XML = "application/samlmetadata+xml"


class Route:
    """What the fake IdP answers on one path."""

    def __init__(
        self,
        body: bytes | str = b"",
        *,
        status: int = 200,
        content_type: str = XML,
        delay: float = 0,
        send_length: bool = True,
        drip: float = 0,
    ) -> None:
        self.body = body.encode() if isinstance(body, str) else body
        self.status = status
        self.content_type = content_type
        self.delay = delay  # before the status line
        self.send_length = send_length  # False: the body ends when the connection closes
        self.drip = drip  # seconds between 1 KiB chunks of the body
        self.headers: dict[str, str] = {}


class FakeIdP:
    """A threaded http.server on 127.0.0.1 whose answers a test sets per path."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        routes = self.routes

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                route = routes.get(self.path) or Route(b"not found", status=404, content_type="text/plain")
                if route.delay:
                    time.sleep(route.delay)
                try:
                    self.send_response(route.status)
                    if route.content_type:
                        self.send_header("Content-Type", route.content_type)
                    for name, value in route.headers.items():
                        self.send_header(name, value)
                    if route.send_length:
                        self.send_header("Content-Length", str(len(route.body)))
                    self.end_headers()
                    if not route.drip:
                        self.wfile.write(route.body)
                    for start in range(0, len(route.body) if route.drip else 0, 1024):
                        self.wfile.write(route.body[start : start + 1024])
                        self.wfile.flush()
                        time.sleep(route.drip)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"


@pytest.fixture(scope="module")
def idp_server() -> Iterator[FakeIdP]:
    server = FakeIdP()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def idp(idp_server: FakeIdP) -> Iterator[FakeIdP]:
    idp_server.routes.clear()
    yield idp_server
    idp_server.routes.clear()


# --- fetch ------------------------------------------------------------------------------------


def test_fetch_returns_the_metadata_text(idp: FakeIdP) -> None:
    idp.routes["/metadata"] = Route(h.idp_metadata_xml())

    assert fetch_idp_metadata(idp.url("/metadata")) == h.idp_metadata_xml()


def test_fetch_follows_a_redirect(idp: FakeIdP) -> None:
    idp.routes["/metadata"] = Route(h.idp_metadata_xml())
    idp.routes["/old"] = Route(status=302, content_type="")
    idp.routes["/old"].headers["Location"] = "/metadata"

    assert "EntityDescriptor" in fetch_idp_metadata(idp.url("/old"))


def test_redirect_loops_stop(idp: FakeIdP) -> None:
    idp.routes["/loop"] = Route(status=302, content_type="")
    idp.routes["/loop"].headers["Location"] = "/loop"

    with pytest.raises(SSOConfigError, match="redirected more than"):
        fetch_idp_metadata(idp.url("/loop"))


def test_redirect_to_a_private_address_is_refused(idp: FakeIdP) -> None:
    idp.routes["/bounce"] = Route(status=302, content_type="")
    idp.routes["/bounce"].headers["Location"] = "https://169.254.169.254/latest/meta-data/"

    with pytest.raises(SSOConfigError, match="private or local"):
        fetch_idp_metadata(idp.url("/bounce"))


def test_html_page_is_refused(idp: FakeIdP) -> None:
    idp.routes["/login"] = Route("<!DOCTYPE html><html><body>Sign in</body></html>", content_type="text/html")

    with pytest.raises(SSOConfigError, match="HTML page"):
        fetch_idp_metadata(idp.url("/login"))


def test_html_body_with_an_xml_content_type_is_refused(idp: FakeIdP) -> None:
    idp.routes["/login"] = Route("<html><body>Sign in</body></html>", content_type="application/xml")

    with pytest.raises(SSOConfigError, match="HTML page"):
        fetch_idp_metadata(idp.url("/login"))


def test_non_xml_content_type_is_refused(idp: FakeIdP) -> None:
    idp.routes["/json"] = Route('{"issuer": "x"}', content_type="application/json")

    with pytest.raises(SSOConfigError, match="not XML"):
        fetch_idp_metadata(idp.url("/json"))


def test_http_error_status_is_reported(idp: FakeIdP) -> None:
    with pytest.raises(SSOConfigError, match="HTTP 404"):
        fetch_idp_metadata(idp.url("/missing"))


def test_slow_server_times_out(idp: FakeIdP) -> None:
    idp.routes["/slow"] = Route(h.idp_metadata_xml(), delay=3)
    started = time.monotonic()

    with pytest.raises(SSOConfigError, match="timed out"):
        fetch_idp_metadata(idp.url("/slow"), timeout=0.5)
    assert time.monotonic() - started < 2.5


def test_a_body_dripping_in_slowly_hits_the_overall_deadline(idp: FakeIdP) -> None:
    padded = h.idp_metadata_xml() + "<!--" + "x" * 10_000 + "-->"
    idp.routes["/drip"] = Route(padded, drip=0.2)  # 1 KiB every 0.2 s: each read is quick, the whole is not
    started = time.monotonic()

    with pytest.raises(SSOConfigError, match="timed out"):
        fetch_idp_metadata(idp.url("/drip"), timeout=0.5)
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("send_length", [True, False])
def test_oversized_body_is_cut_off(idp: FakeIdP, send_length: bool) -> None:
    idp.routes["/big"] = Route(b"<x>" + b"a" * (MAX_METADATA_BYTES + 10) + b"</x>", send_length=send_length)

    with pytest.raises(SSOConfigError, match="larger than"):
        fetch_idp_metadata(idp.url("/big"))


def test_plain_http_is_refused_unless_loopback_is_allowed(idp: FakeIdP, settings: Settings) -> None:
    idp.routes["/metadata"] = Route(h.idp_metadata_xml())
    settings.SSO_ALLOW_INSECURE_LOOPBACK = False
    settings.DEBUG = False

    with pytest.raises(SSOConfigError, match="https"):
        fetch_idp_metadata(idp.url("/metadata"))


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://idp.example.com/metadata", "https"),
        ("ftp://idp.example.com/metadata", "https"),
        ("file:///etc/passwd", "https"),
        ("https://10.0.0.8/metadata", "private or local"),
        ("https://169.254.169.254/latest/meta-data/", "private or local"),
        ("https://[::1]/metadata", "private or local"),
        ("https://127.0.0.1/metadata", "private or local"),
        ("https://user:pw@idp.example.com/metadata", "plain https"),
        ("not a url", "https"),
    ],
)
def test_unsafe_urls_are_refused_without_connecting(url: str, message: str, settings: Settings) -> None:
    settings.SSO_ALLOW_INSECURE_LOOPBACK = False  # the test settings allow loopback IdPs
    settings.DEBUG = False

    with pytest.raises(SSOConfigError, match=message):
        fetch_idp_metadata(url)


# --- refresh ----------------------------------------------------------------------------------


def events(connection: SSOConnection, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(tenant_id=connection.tenant_id, action=action).order_by("seq"))


@pytest.fixture
def connection(db: None, idp: FakeIdP) -> SSOConnection:
    """A connection configured by hand with the *other* certificate; its metadata URL has the real one."""
    return h.make_connection(
        metadata_url=idp.url("/metadata"), idp_x509_certs=[h.other_keys().cert_pem], idp_entity_id="https://old/"
    )


def test_refresh_applies_the_metadata_and_audits_the_certificate_change(
    connection: SSOConnection, idp: FakeIdP
) -> None:
    idp.routes["/metadata"] = Route(h.idp_metadata_xml())

    assert connection_metadata_refresh(connection_id=connection.pk) == "updated"

    connection.refresh_from_db()
    config = connection.config
    assert config["idp_entity_id"] == h.IDP_ENTITY_ID
    assert config["idp_sso_url"] == h.IDP_SSO_URL
    assert config["idp_slo_url"] == h.IDP_SLO_URL
    assert config["idp_x509_certs"] == [parse_certificate(h.idp_keys().cert_pem)]
    assert config["metadata_xml"] == h.idp_metadata_xml()
    assert datetime.fromisoformat(config["metadata_fetched_at"]) > datetime.now(UTC) - timedelta(minutes=1)
    assert "metadata_error" not in config
    refresh = events(connection, "sso.metadata_refresh")
    assert [event.result for event in refresh] == ["success"]
    assert "idp_entity_id" in refresh[0].metadata["changed"]
    changed = events(connection, "sso.idp_certificate_changed")
    assert len(changed) == 1
    assert len(changed[0].metadata["added"]) == len(changed[0].metadata["removed"]) == 1
    assert events(connection, "sso.idp_certificate_expiring") == []


def test_a_second_identical_refresh_changes_nothing(connection: SSOConnection, idp: FakeIdP) -> None:
    idp.routes["/metadata"] = Route(h.idp_metadata_xml())
    connection_metadata_refresh(connection_id=connection.pk)

    assert connection_metadata_refresh(connection_id=connection.pk) == "unchanged"
    assert len(events(connection, "sso.idp_certificate_changed")) == 1
    assert len(events(connection, "sso.metadata_refresh")) == 2


def test_failed_refresh_keeps_the_last_good_config_and_audits_the_failure(
    connection: SSOConnection, idp: FakeIdP
) -> None:
    idp.routes["/metadata"] = Route(h.idp_metadata_xml())
    connection_metadata_refresh(connection_id=connection.pk)
    connection.refresh_from_db()
    good = dict(connection.config)
    idp.routes["/metadata"] = Route("<html><body>Maintenance</body></html>", content_type="text/html")

    assert connection_metadata_refresh(connection_id=connection.pk) == "failed"

    connection.refresh_from_db()
    for key in ("idp_entity_id", "idp_sso_url", "idp_x509_certs", "metadata_xml", "metadata_fetched_at"):
        assert connection.config[key] == good[key]
    assert "HTML page" in connection.config["metadata_error"]
    failure = events(connection, "sso.metadata_refresh")[-1]
    assert failure.result == "failure"
    assert "HTML page" in failure.metadata["error"]


def test_a_good_refresh_clears_the_previous_error(connection: SSOConnection, idp: FakeIdP) -> None:
    idp.routes["/metadata"] = Route("garbage", content_type="text/xml")
    assert connection_metadata_refresh(connection_id=connection.pk) == "failed"
    idp.routes["/metadata"] = Route(h.idp_metadata_xml())

    assert connection_metadata_refresh(connection_id=connection.pk) == "updated"

    connection.refresh_from_db()
    assert "metadata_error" not in connection.config


def test_expiring_certificate_is_audited_once_a_day(connection: SSOConnection, idp: FakeIdP) -> None:
    soon = h.make_key_pair("soon.example.test", not_after=datetime.now(UTC) + timedelta(days=10))
    idp.routes["/metadata"] = Route(h.idp_metadata_xml(certs=[soon.cert_base64, h.idp_keys().cert_base64]))

    connection_metadata_refresh(connection_id=connection.pk)
    connection_metadata_refresh(connection_id=connection.pk)

    expiring = events(connection, "sso.idp_certificate_expiring")
    assert len(expiring) == 1
    assert expiring[0].metadata["days_left"] in (9, 10)


def test_connection_without_metadata_url_is_skipped(db: None) -> None:
    connection = h.make_connection()

    assert connection_metadata_refresh(connection_id=connection.pk) == "skipped"
    assert connection_metadata_refresh(connection_id=999_999_999) == "skipped"


def test_celery_tasks_refresh_every_saml_connection_with_a_url(connection: SSOConnection, idp: FakeIdP) -> None:
    idp.routes["/metadata"] = Route(h.idp_metadata_xml())
    h.make_connection()  # no metadata URL
    disabled = h.make_connection(metadata_url=idp.url("/metadata"))
    SSOConnection.objects.filter(pk=disabled.pk).update(status=SSOConnection.Status.DISABLED)

    assert refresh_all_saml_metadata.delay().get() == 1  # eager in tests: runs the fan-out inline

    connection.refresh_from_db()
    assert connection.config["idp_entity_id"] == h.IDP_ENTITY_ID
    assert refresh_saml_metadata.delay(connection.pk).get() == "unchanged"
    assert refresh_saml_metadata.name == "apps.sso.tasks.refresh_saml_metadata"
    assert refresh_all_saml_metadata.name == "apps.sso.tasks.refresh_all_saml_metadata"


# --- https, with the address pinned -----------------------------------------------------------


def _tls_files(tmp_path: Path, hostname: str) -> tuple[str, str, str]:
    """A private CA and a server certificate for ``hostname`` signed by it; returns (ca, cert, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = (tmp_path / "ca.pem", tmp_path / "server.pem", tmp_path / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return tuple(str(path) for path in paths)


@pytest.fixture
def tls_idp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[tuple[FakeIdP, int]]:
    """An https fake IdP for idp.localtest (and other.localtest), both resolving to 127.0.0.1."""
    import socket
    import ssl

    ca, cert, key = _tls_files(tmp_path, "idp.localtest")
    settings.SSO_METADATA_CA_BUNDLE = ca
    server = FakeIdP()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.server.socket = context.wrap_socket(server.server.socket, server_side=True)
    real_getaddrinfo = socket.getaddrinfo

    def fake_getaddrinfo(host: str, *args: object, **kwargs: object) -> list:
        if host in ("idp.localtest", "other.localtest"):
            host = "127.0.0.1"
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake_getaddrinfo)
    server.thread.start()
    try:
        yield server, server.server.server_address[1]
    finally:
        server.server.shutdown()
        server.server.server_close()


def test_https_fetch_connects_to_the_checked_address_and_verifies_the_host_name(
    tls_idp: tuple[FakeIdP, int],
) -> None:
    server, port = tls_idp
    server.routes["/metadata"] = Route(h.idp_metadata_xml())

    assert fetch_idp_metadata(f"https://idp.localtest:{port}/metadata") == h.idp_metadata_xml()


def test_https_certificate_for_another_host_is_refused(tls_idp: tuple[FakeIdP, int]) -> None:
    server, port = tls_idp
    server.routes["/metadata"] = Route(h.idp_metadata_xml())

    with pytest.raises(SSOConfigError, match="TLS certificate"):
        fetch_idp_metadata(f"https://other.localtest:{port}/metadata")


def test_https_certificate_from_an_unknown_ca_is_refused(tls_idp: tuple[FakeIdP, int], settings: Settings) -> None:
    server, port = tls_idp
    server.routes["/metadata"] = Route(h.idp_metadata_xml())
    settings.SSO_METADATA_CA_BUNDLE = None  # public roots only

    with pytest.raises(SSOConfigError, match="TLS certificate"):
        fetch_idp_metadata(f"https://idp.localtest:{port}/metadata")
