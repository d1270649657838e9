"""``manage.py audit_verify [--tenant SLUG] [--platform] [--json]``: check the audit hash chains.

Verifies every chain by default. Prints one line per chain (or a JSON document
with ``--json``) and exits non-zero when any chain has a problem.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.audit.models import PLATFORM_CHAIN
from apps.audit.verification import VerifyReport, chain_names, chains_to_verify, verify_chain
from apps.tenants.selectors import tenant_get

EXIT_PROBLEM = 2


class Command(BaseCommand):
    help = "Verify the audit log's hash chains and report the first problem of each chain."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", action="append", default=[], metavar="SLUG", help="Verify this tenant's chain.")
        parser.add_argument("--platform", action="store_true", help="Verify the platform chain (chain 0).")
        parser.add_argument("--json", action="store_true", help="Print a JSON document instead of text lines.")

    def handle(self, *args: Any, **options: Any) -> None:
        names = chain_names()
        chains = self._chains(options["tenant"], options["platform"])
        reports = [verify_chain(chain_id) for chain_id in chains]
        failed = [report for report in reports if not report.ok]
        if options["json"]:
            document = {
                "ok": not failed,
                "chains": [{**report.as_dict(), "name": _name(report.chain, names)} for report in reports],
            }
            self.stdout.write(json.dumps(document, indent=2))
        else:
            for report in reports:
                self.stdout.write(self._line(report, names))
            summary = f"{len(reports)} chain(s) verified, {len(failed)} with problems."
            self.stdout.write(self.style.ERROR(summary) if failed else self.style.SUCCESS(summary))
        if failed:
            raise CommandError("audit chain verification found problems", returncode=EXIT_PROBLEM)

    def _chains(self, slugs: list[str], platform: bool) -> list[int]:
        if not slugs and not platform:
            return chains_to_verify()
        chains = [PLATFORM_CHAIN] if platform else []
        for slug in slugs:
            tenant = tenant_get(slug=slug)
            if tenant is None:
                raise CommandError(f"No tenant with the slug {slug!r}.")
            chains.append(tenant.pk)
        return chains

    def _line(self, report: VerifyReport, names: dict[int, str]) -> str:
        label = f"chain {report.chain} ({_name(report.chain, names)})"
        if report.ok:
            span = f"seq {report.start_seq}–{report.last_seq}" if report.checked else "no events"
            sealed = f", sealed at seq {report.sealed_seq}" if report.sealed_seq is not None else ", not sealed yet"
            text = f"OK    {label}: {report.checked} event(s) verified ({span}), head at seq {report.head_seq}{sealed}"
            return self.style.SUCCESS(text)
        problem = report.problem
        assert problem is not None  # noqa: S101  # narrowed by report.ok
        where = f" at seq {problem.seq}" if problem.seq is not None else ""
        event = f" (event id {problem.event_id})" if problem.event_id is not None else ""
        return self.style.ERROR(f"FAIL  {label}: {problem.kind}{where}{event}: {problem.detail}")


def _name(chain_id: int, names: dict[int, str]) -> str:
    return names.get(chain_id, "deleted tenant")
