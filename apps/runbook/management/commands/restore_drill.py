"""``manage.py restore_drill [--json]``: dump, restore into a scratch database, verify, record the evidence.

A thin caller of apps.runbook.drill (``drill_request`` then ``drill_run``, in this
process). Exits non-zero when the drill fails; the DrillResult row holds the
evidence either way, and the scratch database is dropped.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.runbook.drill import DrillError, drill_request, drill_run

EXIT_FAILED = 2


class Command(BaseCommand):
    help = "Restore drill: pg_dump, pg_restore into a scratch database, audit chain verification, row counts."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print the evidence as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            requested = drill_request(via="command")
        except DrillError as exc:
            raise CommandError(str(exc)) from exc
        drill = drill_run(requested.pk)
        if drill is None:
            raise CommandError(f"restore drill #{requested.pk} was claimed by another run")
        if options["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "id": drill.pk,
                        "status": drill.status,
                        "duration_ms": drill.duration_ms,
                        "server_version": drill.server_version,
                        "tool_version": drill.tool_version,
                        "dump_bytes": drill.dump_bytes,
                        "tables": drill.tables,
                        "rows": drill.rows,
                        "mismatches": drill.mismatches,
                        "chains_verified": drill.chains_verified,
                        "events_verified": drill.events_verified,
                        "chain_problems": drill.chain_problems,
                        "steps": drill.steps,
                        "error": drill.error,
                    },
                    indent=2,
                )
            )
        else:
            line = (
                f"Restore drill #{drill.pk}: {drill.status.upper()} in {drill.duration_seconds} s — "
                f"{drill.tables} tables, {drill.rows} rows compared, {len(drill.mismatches)} mismatches; "
                f"{drill.chains_verified} audit chains ({drill.events_verified} events) verified, "
                f"{len(drill.chain_problems)} with problems; scratch database {drill.scratch_database} dropped."
            )
            self.stdout.write(self.style.SUCCESS(line) if drill.status == "passed" else self.style.ERROR(line))
            if drill.error:
                self.stdout.write(self.style.ERROR(drill.error))
        if drill.status != "passed":
            raise CommandError("restore drill failed", returncode=EXIT_FAILED)
