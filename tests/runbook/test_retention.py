"""Retention: settings above the floor only, purges in small batches, audited, and the audit chain still verifies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import psycopg
import pytest
import time_machine
from django.core.management import call_command
from django.utils import timezone

from apps.access.models import DeniedDecision
from apps.audit import services as audit_services
from apps.audit.models import AuditEvent, AuditRetentionCut
from apps.audit.services import record, seal_chains
from apps.audit.verification import verify_chain
from apps.runbook import retention
from apps.runbook.drill import libpq_params
from apps.runbook.models import RetentionPolicy
from apps.runbook.retention import RetentionError, policy_for, policy_update, purge_tenant
from apps.tenants.models import Membership

OLD = timezone.now() - timedelta(days=500)
RECENT = timezone.now() - timedelta(days=30)


def record_at(at: datetime, count: int, tenant, action: str = "member.invite") -> None:
    with time_machine.travel(at, tick=True):
        for index in range(count):
            record(action, tenant=tenant, metadata={"n": index})


def denied_at(tenant, at: datetime, count: int) -> None:
    DeniedDecision.objects.bulk_create(
        DeniedDecision(tenant=tenant, occurred_at=at, subject_type="member", subject_id="1", action="dataset.read")
        for _ in range(count)
    )


@pytest.fixture
def owner(cast) -> Membership:
    return Membership.objects.for_tenant(cast.acme).get(user=cast.owner)


def test_audit_purge_runs_in_batches_is_audited_and_the_chain_verifies(cast, monkeypatch):
    record_at(OLD, 25, cast.acme)
    record_at(RECENT, 3, cast.acme)
    record_at(OLD, 4, cast.globex)
    seal_chains()
    calls: list[int] = []
    real = audit_services.retention_purge

    def counting(**kwargs):
        result = real(**kwargs)
        calls.append(result.deleted)
        return result

    monkeypatch.setattr(retention, "retention_purge", counting)
    summary = purge_tenant(tenant=cast.acme, batch_size=10)
    assert calls == [10, 10, 5]  # never more than a batch per transaction
    assert summary["audit"]["deleted"] == 25
    assert summary["audit"]["batches"] == 3
    remaining = list(AuditEvent.objects.for_tenant(cast.acme).order_by("seq").values_list("action", flat=True))
    assert remaining == ["member.invite"] * 3 + ["audit.retention_purge"] * 3 + ["retention.purge"]
    summary_event = AuditEvent.objects.for_tenant(cast.acme).get(action="retention.purge")
    assert summary_event.metadata["audit"]["deleted"] == 25
    # Verified from the recorded anchor right after the purge, and the evidence says so.
    assert summary_event.metadata["audit"]["verified_from_seq"] == 26
    assert summary_event.metadata["audit"]["chain_ok"] is True
    assert summary_event.metadata["prompts"] == {"skipped": "no model stores raw prompts or outputs"}
    assert AuditRetentionCut.objects.get(chain=cast.acme.pk).up_to_seq == 25
    assert verify_chain(cast.acme.pk).ok
    # The other tenant's old events are its own business (its own run).
    assert AuditEvent.objects.for_tenant(cast.globex).count() == 4
    seal_chains()
    out = StringIO()
    call_command("audit_verify", stdout=out)  # raises CommandError on any problem
    assert "0 with problems" in out.getvalue()
    # A second run finds nothing old: no purge event, just its summary.
    purge_tenant(tenant=cast.acme, batch_size=10)
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="audit.retention_purge").count() == 3
    assert AuditEvent.objects.for_tenant(cast.acme).filter(action="retention.purge").count() == 2
    assert verify_chain(cast.acme.pk).ok


def test_events_sharing_a_timestamp_do_not_stall_the_batches(cast):
    moment = OLD
    with time_machine.travel(moment, tick=False):  # 12 events at the very same instant
        for _ in range(12):
            record("member.invite", tenant=cast.acme)
    summary = purge_tenant(tenant=cast.acme, batch_size=5)
    assert summary["audit"]["deleted"] == 12
    assert verify_chain(cast.acme.pk).ok


def test_a_tenant_keeping_events_longer_keeps_them(cast, owner):
    record_at(timezone.now() - timedelta(days=400), 2, cast.acme)
    policy_update(tenant=cast.acme, actor=owner, audit_days=450, denied_days=100, usage_days=100, prompt_days=7)
    assert purge_tenant(tenant=cast.acme)["audit"]["deleted"] == 0
    policy_update(tenant=cast.acme, actor=owner, audit_days=365, denied_days=100, usage_days=100, prompt_days=7)
    assert purge_tenant(tenant=cast.acme)["audit"]["deleted"] >= 2
    assert verify_chain(cast.acme.pk).ok


def test_denied_decisions_are_purged_in_batches(cast, owner):
    denied_at(cast.acme, timezone.now() - timedelta(days=200), 25)
    denied_at(cast.acme, timezone.now() - timedelta(days=10), 4)
    denied_at(cast.globex, timezone.now() - timedelta(days=200), 3)
    policy_update(tenant=cast.acme, actor=owner, audit_days=365, denied_days=100, usage_days=100, prompt_days=7)
    summary = purge_tenant(tenant=cast.acme, batch_size=10)
    assert summary["denied"] == {
        "older_than": summary["denied"]["older_than"],
        "deleted": 25,
        "batches": 3,
    }
    assert DeniedDecision.objects.for_tenant(cast.acme).count() == 4
    assert DeniedDecision.objects.for_tenant(cast.globex).count() == 3


def test_usage_detail_is_purged_by_our_receipt_time(cast, owner):
    usage = retention.usage_model()
    if usage is None:
        pytest.skip("billing.UsageEvent is not installed")
    now = timezone.now()

    def event(key: str, received: datetime, occurred: datetime) -> None:
        usage.objects.create(
            tenant=cast.acme,
            model_name="openai/gpt-4.1",
            input_tokens=10,
            output_tokens=5,
            cost=Decimal("0.01"),
            currency="usd",
            idempotency_key=key,
            occurred_at=occurred,
            received_at=received,
        )

    event("old", now - timedelta(days=120), now - timedelta(days=120))
    event("backdated", now - timedelta(days=1), now - timedelta(days=900))  # the caller's clock is not ours
    event("new", now - timedelta(days=1), now - timedelta(days=1))
    policy_update(tenant=cast.acme, actor=owner, audit_days=365, denied_days=100, usage_days=90, prompt_days=7)
    summary = purge_tenant(tenant=cast.acme)
    assert summary["usage"]["deleted"] == 1
    assert sorted(usage.objects.for_tenant(cast.acme).values_list("idempotency_key", flat=True)) == ["backdated", "new"]


def test_a_locked_row_is_skipped_not_waited_for(transactional_db, cast):
    denied_at(cast.acme, timezone.now() - timedelta(days=400), 3)
    locked_id = DeniedDecision.objects.for_tenant(cast.acme).order_by("pk").values_list("pk", flat=True).first()
    with psycopg.connect(**libpq_params()) as other:
        other.execute("SELECT 1 FROM access_denieddecision WHERE id = %s FOR UPDATE", [locked_id])
        summary = purge_tenant(tenant=cast.acme)  # would block here without SKIP LOCKED
        other.rollback()
    assert summary["denied"]["deleted"] == 2
    assert list(DeniedDecision.objects.for_tenant(cast.acme).values_list("pk", flat=True)) == [locked_id]


def test_retention_below_the_floor_is_refused(cast, owner, settings):
    with pytest.raises(RetentionError) as refused:
        policy_update(tenant=cast.acme, actor=owner, audit_days=100, denied_days=10, usage_days=100, prompt_days=7)
    assert set(refused.value.errors) == {"audit_days", "denied_days"}
    with pytest.raises(RetentionError):
        policy_update(tenant=cast.acme, actor=owner, audit_days=99999, denied_days=100, usage_days=100, prompt_days=7)
    assert not RetentionPolicy.objects.exists()
    assert not AuditEvent.objects.filter(action="retention.update").exists()
    # A floor raised later lifts a shorter choice at once.
    policy_update(tenant=cast.acme, actor=owner, audit_days=400, denied_days=100, usage_days=100, prompt_days=7)
    settings.AUDIT_RETENTION_FLOOR_DAYS = 500
    assert policy_for(tenant=cast.acme).audit_days == 500


def test_the_settings_page_shows_form_errors_below_the_floor(cast, client_for):
    client = client_for(cast.admin)
    response = client.post(
        "/t/acme/runbooks/retention/edit/",
        {"audit_days": "30", "denied_days": "abc", "usage_days": "100", "prompt_days": "7"},
    )
    assert response.status_code == 200  # the form again, with what is wrong under each field
    body = response.content.decode()
    assert "At least 365 days: the platform does not allow a shorter retention." in body
    assert "Enter a whole number of days." in body
    assert not RetentionPolicy.objects.exists()
    response = client.post(
        "/t/acme/runbooks/retention/edit/",
        {"audit_days": "730", "denied_days": "180", "usage_days": "100", "prompt_days": "7"},
    )
    assert response.status_code == 302
    assert policy_for(tenant=cast.acme).audit_days == 730
    event = AuditEvent.objects.for_tenant(cast.acme).get(action="retention.update")
    assert event.metadata["before"]["audit_days"] == 365
    assert event.metadata["after"]["audit_days"] == 730
    assert event.actor_id == str(cast.admin.pk)
    page = client.get("/t/acme/runbooks/retention/").content.decode()
    assert "730 days" in page
    assert "Set by admin@acme.example" in page


def test_the_daily_task_purges_every_tenant(cast):
    from apps.runbook.tasks import purge_retention

    record_at(OLD, 2, cast.acme)
    record_at(OLD, 2, cast.globex)
    done = purge_retention.delay().get()
    assert done["acme"]["audit"]["deleted"] == 2
    assert done["globex"]["audit"]["deleted"] == 2
    assert verify_chain(cast.acme.pk).ok
    assert verify_chain(cast.globex.pk).ok


def test_a_tenant_with_nothing_old_is_left_alone(cast):
    summary = purge_tenant(tenant=cast.acme, now=datetime(2026, 12, 1, tzinfo=UTC))
    assert summary["audit"] == {"older_than": summary["audit"]["older_than"], "deleted": 0, "batches": 0}
