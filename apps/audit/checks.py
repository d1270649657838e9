"""Deployment check: the application's database role must not be able to switch the audit guards off.

The triggers of apps/audit/migrations/0002 and 0005 (append-only events and
seals, no TRUNCATE, heads that only advance, retention only through
``bastion_audit_retention_purge``) bind every role except the tables' owner
and superusers, who can disable triggers. Production should therefore run
migrations as an owner role and the web and worker processes as another role
that owns none of the audit tables (see the README's security notes).

A database check (Django runs it only when asked for a database):
``manage.py check --deploy --database default``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core import checks
from django.db import DatabaseError, connections

AUDIT_TABLES = ("audit_auditevent", "audit_auditseal", "audit_auditchainhead", "audit_auditretentioncut")

_ROLE_SQL = """
SELECT r.rolsuper,
       array(SELECT c.relname::text FROM pg_class c
              WHERE c.relname = ANY(%s) AND c.relkind = 'r'
                AND pg_has_role(current_user, c.relowner, 'USAGE')
              ORDER BY c.relname)
FROM pg_roles r WHERE r.rolname = current_user
"""


@checks.register(checks.Tags.database, checks.Tags.security, deploy=True)
def audit_tables_not_owned_by_app_role(
    app_configs: Any = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list[checks.CheckMessage]:
    """audit.W001 when the role owns (or is a member of the owner of) an audit table; audit.W002 for a superuser."""
    messages: list[checks.CheckMessage] = []
    for alias in databases or ():
        try:
            with connections[alias].cursor() as cursor:
                cursor.execute(_ROLE_SQL, [list(AUDIT_TABLES)])
                row = cursor.fetchone()
        except DatabaseError as exc:
            messages.append(
                checks.Warning(
                    f"Could not check the database role of {alias!r}: {type(exc).__name__}.",
                    id="audit.W003",
                )
            )
            continue
        if row is None:
            continue
        superuser, owned = row
        if superuser:
            messages.append(
                checks.Warning(
                    f"The application connects to {alias!r} as a superuser, who can switch off the audit "
                    "log's append-only triggers.",
                    hint="Run web and worker processes as a role that is neither superuser nor owner of the "
                    "audit tables; run migrations as the owner role.",
                    id="audit.W002",
                )
            )
        elif owned:
            messages.append(
                checks.Warning(
                    f"The application's database role owns audit tables in {alias!r} ({', '.join(owned)}): "
                    "it can disable their triggers, delete events and roll chain heads back.",
                    hint="Run migrations as an owner role and the application as another role with SELECT and "
                    "INSERT on the audit tables and EXECUTE on bastion_audit_retention_purge.",
                    id="audit.W001",
                )
            )
    return messages
