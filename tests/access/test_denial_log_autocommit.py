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


def _wait_for_rows(tenant, count: int, timeout: float = 5.0) -> list[DeniedDecision]:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = list(DeniedDecision.objects.for_tenant(tenant).order_by("id"))
        if len(rows) >= count:
            return rows
        time.sleep(0.05)
    return list(DeniedDecision.objects.for_tenant(tenant).order_by("id"))


def test_buffered_denials_leave_the_request_path_and_arrive_once(cast, settings) -> None:
    """With a flush interval, the deciding thread writes nothing; the writer stores every row exactly once."""
    settings.ACCESS_DENIAL_LOG_FLUSH_MS = 50
    viewer = Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=cast.viewer)
    actions = ["role.manage", "billing.manage", "member.manage", "sso.manage", "key.manage"]
    with CaptureQueriesContext(connection) as queries:
        for action in actions:
            assert authorize(viewer, action, tenant=cast.acme).allowed is False
    assert not [q for q in queries if "INSERT" in q["sql"]]
    rows = _wait_for_rows(cast.acme, len(actions))
    assert [row.action for row in rows] == actions
    assert all(row.subject_id == str(viewer.pk) for row in rows)
    import time

    time.sleep(0.2)  # the writer has gone idle: nothing is written twice
    assert DeniedDecision.objects.for_tenant(cast.acme).count() == len(actions)


def test_flush_writes_what_waits_at_once(cast, settings) -> None:
    from apps.access import denial_log

    settings.ACCESS_DENIAL_LOG_FLUSH_MS = 60_000  # the writer would wait a minute
    viewer = Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=cast.viewer)
    authorize(viewer, "role.manage", tenant=cast.acme)
    assert DeniedDecision.objects.for_tenant(cast.acme).count() == 0
    denial_log.flush()  # what a clean shutdown does (atexit)
    assert DeniedDecision.objects.for_tenant(cast.acme).count() == 1


def test_inside_a_transaction_the_row_is_part_of_it(cast, settings) -> None:
    from django.db import transaction

    settings.ACCESS_DENIAL_LOG_FLUSH_MS = 50
    viewer = Membership.objects.select_related("tenant", "user").get(tenant=cast.acme, user=cast.viewer)
    with transaction.atomic():
        authorize(viewer, "role.manage", tenant=cast.acme)
        assert DeniedDecision.objects.for_tenant(cast.acme).count() == 1
        transaction.set_rollback(True)
    assert DeniedDecision.objects.for_tenant(cast.acme).count() == 0
