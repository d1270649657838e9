"""A denial decided outside any transaction (a runtime API call) is logged in one round trip, and only it is relaxed."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.access.decisions import authorize
from apps.access.models import DeniedDecision
from apps.tenants.models import Membership

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_denial_outside_a_transaction_is_one_statement_and_leaves_the_session_as_it_was(cast) -> None:
    viewer = Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=cast.viewer)
    assert not connection.in_atomic_block
    with CaptureQueriesContext(connection) as queries:
        decision = authorize(viewer, "role.manage", tenant=cast.acme)
    assert decision.allowed is False
    writes = [q["sql"] for q in queries if "INSERT INTO" in q["sql"]]
    assert len(writes) == 1
    assert writes[0].startswith("BEGIN; SET LOCAL synchronous_commit TO OFF; INSERT INTO")
    row = DeniedDecision.objects.for_tenant(cast.acme).get()
    assert (row.subject_type, row.subject_id, row.action) == ("member", str(viewer.pk), "role.manage")
    assert row.subject_display == "viewer@acme.example"
    assert row.reasons == list(decision.reasons)
    assert row.occurred_at is not None
    # The relaxed commit was local to that one transaction: the session is back to full durability.
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"
    assert connection.get_autocommit()


def test_reasons_with_quotes_and_unicode_are_stored_as_json(cast) -> None:
    from apps.access.decisions import Decision, _log_denial

    viewer = Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=cast.viewer)
    reasons = ('it\'s "quoted"; DROP TABLE x; --', "Zoë’s rôle — 数据", "%s %(x)s {}")
    _log_denial(viewer, Decision(False, "dataset.read", reasons), None, cast.acme.pk)
    row = DeniedDecision.objects.for_tenant(cast.acme).get()
    assert row.reasons == list(reasons)
