"""Transactional tests still flush the audit tables, and the TRUNCATE guard is on while they run."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection

from apps.audit.models import AuditEvent
from apps.audit.services import record


@pytest.mark.parametrize("round_", [1, 2])  # the second round proves the first one's flush emptied the log
def test_guard_is_on_during_a_transactional_test_and_the_flush_still_works(transactional_db, round_):
    assert not AuditEvent.objects.exists()
    record("platform.thing")
    with pytest.raises(DatabaseError, match="TRUNCATE refused"), connection.cursor() as cursor:
        cursor.execute("TRUNCATE audit_auditevent CASCADE")
    assert AuditEvent.objects.count() == 1
