"""The database refuses to change or remove audit rows outside the retention path."""

from __future__ import annotations

import pytest
from django.db import DatabaseError, connection, transaction

from apps.audit.models import AuditEvent, AuditSeal
from apps.audit.services import record, seal_chains


@pytest.fixture
def event(cast) -> AuditEvent:
    return AuditEvent.objects.get(pk=record("member.invite", tenant=cast.acme, metadata={"email": "x@y.z"}))


def refused(operation) -> None:
    # A savepoint keeps the test transaction usable after the refusal.
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        operation()


def test_orm_update_is_refused(event):
    refused(lambda: AuditEvent.objects.filter(pk=event.pk).update(result="failure"))
    event.action = "member.remove"
    refused(event.save)
    assert AuditEvent.objects.get(pk=event.pk).action == "member.invite"


def test_orm_delete_is_refused(event):
    refused(event.delete)
    refused(lambda: AuditEvent.objects.all().delete())
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def _raw(sql: str, params: list) -> None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def test_raw_sql_update_and_delete_are_refused(event):
    refused(lambda: _raw("UPDATE audit_auditevent SET metadata = '{}' WHERE id = %s", [event.pk]))
    refused(lambda: _raw("DELETE FROM audit_auditevent WHERE id = %s", [event.pk]))


def test_setting_the_old_retention_guc_does_not_allow_delete(event):
    """Any session can set a custom setting: it must not open the table (issue #7, item 9)."""
    with transaction.atomic():
        _raw("SET LOCAL bastion.audit_retention = 'on'", [])
        refused(lambda: _raw("DELETE FROM audit_auditevent WHERE id = %s", [event.pk]))
    refused(lambda: _raw("SET bastion.audit_retention = 'on'; DELETE FROM audit_auditevent WHERE id = %s", [event.pk]))
    _raw("RESET bastion.audit_retention", [])
    assert AuditEvent.objects.filter(pk=event.pk).exists()


def test_a_forged_retention_pass_of_another_transaction_does_not_allow_delete(event):
    # Only a pass for *this* transaction counts; the purge function deletes its own before returning.
    _raw("INSERT INTO audit_retention_pass (xact, chain, up_to_seq) VALUES ('1'::xid8, %s, 999)", [event.chain])
    refused(lambda: _raw("DELETE FROM audit_auditevent WHERE id = %s", [event.pk]))


def test_seals_are_append_only(event):
    (seal,) = seal_chains()
    refused(lambda: AuditSeal.objects.filter(pk=seal.pk).update(seq=99))
    refused(lambda: AuditSeal.objects.filter(pk=seal.pk).delete())
