#!/usr/bin/env python
"""``make run``: a working Bastion console from a fresh clone, in one command.

1. Database: ``DATABASE_URL`` if set, otherwise an embedded PostgreSQL 18 under
   ``.data/pg`` (started here, database ``bastion`` created on first run).
2. Broker: ``CELERY_BROKER_URL`` if set, otherwise kombu's filesystem transport
   under ``.data/broker`` (the settings default; no server needed).
3. ``migrate``, ``collectstatic`` (when static files changed), ``seed_demo``.
4. web (gunicorn), Celery worker and Celery beat as child processes; their
   output is interleaved here with a name prefix.

Ctrl-C (or SIGTERM) stops the children, then the embedded PostgreSQL.
Running again reuses ``.data``. Environment: ``PORT`` (8000), ``HOST``
(127.0.0.1), ``DJANGO_SETTINGS_MODULE`` (config.settings.dev),
``BASTION_DATA_DIR`` (.data), ``BASTION_KEEP_DB=1`` to leave the embedded
PostgreSQL running on exit. ``--setup-only`` stops after step 3.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import devdb  # noqa: E402

from apps.platform.management import demo  # noqa: E402 (plain constants, no Django set-up)

BIN = Path(sys.executable).parent
STOP_TIMEOUT = 20.0
READY_TIMEOUT = 60.0
COLORS = {"web": "\033[36m", "worker": "\033[35m", "beat": "\033[33m", "run": "\033[32m"}
RESET = "\033[0m"


class Stop(Exception):  # noqa: N818 (a control-flow signal, not an error)
    """SIGINT or SIGTERM arrived."""


def _raise_stop(signum: int, frame: object) -> None:
    raise Stop(signal.Signals(signum).name)


class Output:
    """Serialised, prefixed output lines (coloured on a terminal)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")

    def line(self, name: str, text: str) -> None:
        prefix = f"{name:<6} |"
        if self.color:
            prefix = f"{COLORS.get(name, '')}{prefix}{RESET}"
        with self.lock:
            sys.stdout.write(f"{prefix} {text.rstrip()}\n")
            sys.stdout.flush()


OUT = Output()


def say(text: str) -> None:
    for line in text.splitlines() or [""]:
        OUT.line("run", line)


class Children:
    """Child processes, each in its own session so a terminal's Ctrl-C reaches only us."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.pumps: list[threading.Thread] = []

    def start(self, name: str, argv: list[str]) -> None:
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs[name] = proc
        pump = threading.Thread(target=self._pump, args=(name, proc), daemon=True)
        pump.start()
        self.pumps.append(pump)

    @staticmethod
    def _pump(name: str, proc: subprocess.Popen[bytes]) -> None:
        if proc.stdout is None:
            return
        for raw in iter(proc.stdout.readline, b""):
            OUT.line(name, raw.decode("utf-8", errors="replace"))

    def exited(self) -> tuple[str, int] | None:
        for name, proc in self.procs.items():
            code = proc.poll()
            if code is not None:
                return name, code
        return None

    def stop(self) -> None:
        """SIGTERM every child's process group; SIGKILL what is left after STOP_TIMEOUT (or a second Ctrl-C)."""
        running = {name: proc for name, proc in self.procs.items() if proc.poll() is None}
        if not running:
            return
        say(f"stopping {', '.join(running)} …")
        for proc in running.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        try:
            while any(p.poll() is None for p in running.values()) and time.monotonic() < deadline:
                time.sleep(0.1)
        except Stop:
            say("second interrupt: killing")
        for name, proc in running.items():
            if proc.poll() is None:
                say(f"{name} did not stop in time; killing it")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        for pump in self.pumps:
            pump.join(timeout=2)


def manage(env: dict[str, str], *args: str) -> None:
    """Run a manage.py command in the foreground (Ctrl-C reaches it as well)."""
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"run: manage.py {' '.join(args)} failed with exit code {result.returncode}")


def _newest_mtime(folder: Path) -> float:
    newest = folder.stat().st_mtime if folder.exists() else 0.0
    for path in folder.rglob("*"):
        newest = max(newest, path.stat().st_mtime)
    return newest


def collectstatic_if_needed(env: dict[str, str], data_dir: Path) -> None:
    """collectstatic when our static files or the installed packages changed since the last run."""
    stamp = data_dir / "staticfiles" / ".bastion-collected"
    venv_stamp = ROOT / ".venv" / ".bastion-install-stamp"
    want = f"{_newest_mtime(ROOT / 'static')} {venv_stamp.read_text().strip() if venv_stamp.exists() else ''}"
    if stamp.exists() and stamp.read_text() == want:
        return
    say("collecting static files …")
    manage(env, "collectstatic", "--noinput", "--verbosity", "0")
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(want)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_until_ready(url: str, children: Children) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if children.exited():
            return False
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (our own http:// URL)
                if response.status == 200:
                    return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    return False


def banner(url: str, database: str, broker: str) -> str:
    rule = "─" * 68
    lines = [
        rule,
        f"Bastion is running: {url}",
        f"  database  {database}",
        f"  broker    {broker}",
        "Sign in with (e-mail / password):",
        *demo.sign_in_lines(),
        "Press Ctrl-C to stop.",
        rule,
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the Bastion console locally (web, worker, beat).")
    parser.add_argument("--setup-only", action="store_true", help="migrate, collect static files, seed; then exit")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")
    env["PYTHONUNBUFFERED"] = "1"
    if os.geteuid() == 0:
        # Celery prints a multi-line plain-text warning when the worker runs as root (containers, CI).
        warning = "ignore:You're running the worker with superuser privileges"
        env["PYTHONWARNINGS"] = ",".join(filter(None, [env.get("PYTHONWARNINGS"), warning]))
    data_dir = Path(env.get("BASTION_DATA_DIR") or ROOT / ".data").resolve()
    env["BASTION_DATA_DIR"] = str(data_dir)
    host = env.get("HOST", "127.0.0.1")
    port = int(env.get("PORT", "8000"))
    url = f"http://{host}:{port}/"
    env.setdefault("SITE_URL", url.rstrip("/"))

    if not args.setup_only and port_in_use(host, port):
        say(f"{host}:{port} is already in use (another `make run`?). Stop it or pick a port: PORT=8001 make run")
        return 1

    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGTERM, _raise_stop)
    data_dir.mkdir(parents=True, exist_ok=True)
    embedded = False
    children = Children(env)
    code = 0
    try:
        if env.get("DATABASE_URL"):
            database = "DATABASE_URL from the environment"
        else:
            say(f"starting embedded PostgreSQL in {data_dir / 'pg'} …")
            db = devdb.start(data_dir)
            embedded = True
            env["DATABASE_URL"] = db.url()
            database = f"embedded PostgreSQL 18 in {db.pgdata} ({'started' if db.started else 'reused'})"
        if env.get("CELERY_BROKER_URL"):
            broker = "CELERY_BROKER_URL from the environment"
        else:
            broker = f"filesystem queue in {data_dir / 'broker'}"

        manage(env, "migrate", "--noinput")
        collectstatic_if_needed(env, data_dir)
        manage(env, "seed_demo")
        if args.setup_only:
            return 0

        children.start(
            "web",
            [
                str(BIN / "gunicorn"),
                "--config=config/gunicorn.py",
                "config.wsgi:application",
                f"--bind={host}:{port}",
                "--workers=2",
                "--worker-class=gthread",
                "--threads=4",
                "--graceful-timeout=10",
                "--timeout=60",
            ],
        )
        worker_args = ["--pool=threads", "--concurrency=2", "--without-gossip", "--without-mingle"]
        children.start("worker", [str(BIN / "celery"), "-A", "config", "-q", "worker", "-l", "INFO", *worker_args])
        children.start("beat", [str(BIN / "celery"), "-A", "config", "-q", "beat", "-l", "INFO"])

        if wait_until_ready(f"{url}healthz", children):
            say(banner(url, database, broker))
        while (exited := children.exited()) is None:
            time.sleep(0.5)
        name, status = exited
        say(f"{name} exited with code {status}; stopping the others")
        code = 1
    except Stop as stop:
        say(f"{stop} received")
    finally:
        signal.signal(signal.SIGINT, _raise_stop)
        children.stop()
        if embedded and env.get("BASTION_KEEP_DB") != "1":
            with contextlib.suppress(Stop):
                devdb.stop(data_dir)
                say("embedded PostgreSQL stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
