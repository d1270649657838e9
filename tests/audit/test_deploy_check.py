"""``check --deploy --database default`` warns when the app's role could switch the audit guards off."""

from __future__ import annotations

import uuid

from django.db import connection, transaction

from apps.audit.checks import audit_tables_not_owned_by_app_role


def _ids(databases=("default",)) -> list[str]:
    return [message.id for message in audit_tables_not_owned_by_app_role(databases=list(databases))]


def test_only_runs_when_a_database_is_named(db):
    assert _ids(databases=()) == []


def test_superuser_is_reported(db):
    # The test suite connects as the postgres superuser (and owner of everything).
    assert _ids() == ["audit.W002"]


def test_owner_role_is_reported_and_a_separate_app_role_is_clean(db):
    owner = f"bastion_owner_{uuid.uuid4().hex[:8]}"
    app = f"bastion_app_{uuid.uuid4().hex[:8]}"
    with transaction.atomic():
        with connection.cursor() as cursor:
            # Roles and ownership changes are transactional: the rollback below undoes them.
            cursor.execute(f"CREATE ROLE {owner} NOLOGIN")
            cursor.execute(f"CREATE ROLE {app} NOLOGIN")
            cursor.execute(f"ALTER TABLE audit_auditevent OWNER TO {owner}")
            cursor.execute(f"SET LOCAL ROLE {owner}")
        owner_ids = _ids()
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
            cursor.execute(f"SET LOCAL ROLE {app}")
        app_ids = _ids()
        transaction.set_rollback(True)
    assert owner_ids == ["audit.W001"]
    assert app_ids == []
