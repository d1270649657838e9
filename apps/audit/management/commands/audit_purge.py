"""``manage.py audit_purge --tenant SLUG|--platform --older-than-days N``: apply audit retention.

A thin caller of apps.audit.services.retention_purge, the only path that may
delete audit events. The purge itself is recorded in the same chain.
"""

from __future__ import annotations

import getpass
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from apps.audit.models import PLATFORM_CHAIN
from apps.audit.services import Actor, RetentionError, retention_purge
from apps.tenants.selectors import tenant_get


class Command(BaseCommand):
    help = "Delete audit events older than N days from one chain (the privileged retention path)."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--tenant", metavar="SLUG", help="Purge this tenant's chain.")
        target.add_argument("--platform", action="store_true", help="Purge the platform chain (chain 0).")
        parser.add_argument(
            "--older-than-days", type=int, required=True, metavar="N", help="Delete events older than N days (N ≥ 1)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days = options["older_than_days"]
        if days < 1:
            raise CommandError("--older-than-days must be at least 1.")
        if options["platform"]:
            chain_id, label = PLATFORM_CHAIN, "platform"
        else:
            tenant = tenant_get(slug=options["tenant"])
            if tenant is None:
                raise CommandError(f"No tenant with the slug {options['tenant']!r}.")
            chain_id, label = tenant.pk, tenant.slug
        older_than = timezone.now() - timedelta(days=days)
        actor = Actor.system(f"manage.py audit_purge ({_os_user()})")
        try:
            result = retention_purge(chain=chain_id, older_than=older_than, by=actor)
        except (RetentionError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        anchor = result.anchor_hash.hex()[:16] + "…" if result.anchor_hash else "genesis"
        self.stdout.write(
            self.style.SUCCESS(
                f"Chain {chain_id} ({label}): deleted {result.deleted} event(s) older than "
                f"{older_than:%Y-%m-%d %H:%M} UTC; chain now starts after seq {result.up_to_seq} "
                f"(anchor {anchor}); recorded as event {result.event_id}."
            )
        )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name in some containers
        return "unknown OS user"
