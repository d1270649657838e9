"""Dunning, end to end: failed payment → banner and one e-mail → grace → suspended → paid → active again.

Webhooks go the real way (signed, stored, processed by the task inline after commit); the
daily beat step is called as beat would; time moves with time-machine.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from apps.access import decisions
from apps.audit.models import AuditEvent
from apps.billing import dunning
from apps.billing.context_processors import billing as billing_context
from apps.billing.models import DunningCase, StripeCustomer, WebhookEvent
from apps.tenants.models import Membership, Tenant
from apps.tenants.services import tenant_set_status
from config.celery import app as celery_app
from tests.billing.conftest import deliver, event, invoice

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
MEMBERS = "/t/acme/members/"
BANNER = "Payment failed."


def failed_invoice(invoice_id: str = "in_acme_1", **extra: Any) -> dict:
    obj = invoice("cus_acme", invoice_id=invoice_id)
    obj.update({"status": "open", "number": "ACME-0007", "amount_due": 12900, "currency": "eur", **extra})
    obj["hosted_invoice_url"] = f"https://invoice.stripe.com/i/acct_1/{invoice_id}"
    return obj


@pytest.fixture
def send(db, django_capture_on_commit_callbacks):
    client = Client()

    def apply(event_type: str, obj: dict, at: datetime) -> WebhookEvent:
        payload = event(event_type, obj, created=int(at.timestamp()))
        with time_machine.travel(at, tick=False), django_capture_on_commit_callbacks(execute=True):
            assert deliver(client, payload).status_code == 200
        row = WebhookEvent.objects.get(event_id=payload["id"])
        assert row.status == "done", row.last_error
        return row

    return apply


@pytest.fixture
def acme(cast) -> Tenant:
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    return cast.acme


def enforce(at: datetime) -> int:
    with time_machine.travel(at, tick=False):
        return dunning.dunning_enforce()


def page(client_for, user, url: str = MEMBERS) -> str:
    return client_for(user).get(url).content.decode()


def test_the_whole_timeline(cast, acme, send, client_for) -> None:
    send("invoice.payment_failed", failed_invoice(), T0)
    case = DunningCase.objects.get()
    assert case.grace_until == T0 + timedelta(days=14)
    # The banner: billing admins only, on every page of the tenant.
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        for url in ("/t/acme/", MEMBERS, "/t/acme/billing/"):
            assert BANNER in page(client_for, cast.owner, url), url
        assert "16 March 2026, 10:00 UTC" in page(client_for, cast.owner)
        for user in (cast.admin, cast.member, cast.viewer):  # admin holds billing.view, not billing.manage
            assert BANNER not in page(client_for, user)
    # One e-mail, to the billing admins, with the way to pay.
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@acme.example"]
    assert "129.00 EUR" in message.body
    assert "https://invoice.stripe.com/i/acct_1/in_acme_1" in message.body
    assert "16 March 2026" in message.body
    # Stripe retries the charge and fails again: same invoice, no second e-mail, same grace.
    send("invoice.payment_failed", failed_invoice(attempt_count=2), T0 + timedelta(days=3))
    assert len(mail.outbox) == 1
    assert DunningCase.objects.get().grace_until == T0 + timedelta(days=14)
    # Within the grace nothing happens.
    assert enforce(T0 + timedelta(days=13, hours=23)) == 0
    assert not Tenant.objects.get(pk=acme.pk).is_suspended
    # After it, the daily run suspends for non-payment: read-only.
    assert enforce(T0 + timedelta(days=14, hours=1)) == 1
    tenant = Tenant.objects.get(pk=acme.pk)
    assert tenant.is_suspended
    assert tenant.suspended_reason == "non-payment"
    assert AuditEvent.objects.filter(tenant=acme, action="tenant.suspend").count() == 1
    assert AuditEvent.objects.filter(tenant=acme, action="billing.dunning_suspended").count() == 1
    assert enforce(T0 + timedelta(days=15)) == 0  # idempotent
    with time_machine.travel(T0 + timedelta(days=14, hours=2), tick=False):
        owner = client_for(cast.owner)
        refused = owner.post("/t/acme/billing/portal/")
        assert refused.status_code == 403  # a write in a suspended tenant
        html = owner.get("/t/acme/billing/").content.decode()
        assert "suspended for non-payment" in html
        assert "read-only until the unpaid invoice is paid" in html
        assert "read-only until platform staff reactivate it" not in html
        assert "Pay the invoice at Stripe" in html  # paying needs no write in Bastion
    # Paid: the case closes and the non-payment suspension is lifted at once.
    send("invoice.paid", failed_invoice(status="paid", amount_paid=12900), T0 + timedelta(days=14, hours=3))
    tenant.refresh_from_db()
    assert not tenant.is_suspended
    assert DunningCase.objects.get().resolved_at is not None
    assert AuditEvent.objects.filter(tenant=acme, action="tenant.reactivate").count() == 1
    assert AuditEvent.objects.filter(tenant=acme, action="billing.dunning_lifted").count() == 1
    with time_machine.travel(T0 + timedelta(days=14, hours=4), tick=False):
        assert BANNER not in page(client_for, cast.owner)


def test_paid_never_lifts_a_suspension_staff_made_for_another_reason(cast, acme, send) -> None:
    send("invoice.payment_failed", failed_invoice(), T0)
    enforce(T0 + timedelta(days=15))
    tenant = Tenant.objects.get(pk=acme.pk)
    tenant_set_status(tenant=tenant, suspended=False, actor=cast.staff)
    tenant_set_status(tenant=tenant, suspended=True, reason="fraud review", actor=cast.staff)
    send("invoice.paid", failed_invoice(status="paid"), T0 + timedelta(days=16))
    tenant.refresh_from_db()
    assert tenant.is_suspended
    assert tenant.suspended_reason == "fraud review"


def test_the_daily_run_leaves_a_staff_suspension_alone(cast, acme, send) -> None:
    send("invoice.payment_failed", failed_invoice(), T0)
    tenant_set_status(tenant=acme, suspended=True, reason="contract ended", actor=cast.staff)
    assert enforce(T0 + timedelta(days=20)) == 0
    tenant = Tenant.objects.get(pk=acme.pk)
    assert tenant.suspended_reason == "contract ended"
    assert DunningCase.objects.get().suspended_at is None


def test_one_unpaid_invoice_keeps_the_suspension_when_another_is_paid(cast, acme, send) -> None:
    send("invoice.payment_failed", failed_invoice("in_a"), T0)
    send("invoice.payment_failed", failed_invoice("in_b"), T0 + timedelta(hours=1))
    enforce(T0 + timedelta(days=15))
    send("invoice.paid", failed_invoice("in_a", status="paid"), T0 + timedelta(days=16))
    assert Tenant.objects.get(pk=acme.pk).is_suspended
    send("invoice.paid", failed_invoice("in_b", status="paid"), T0 + timedelta(days=16, hours=1))
    assert not Tenant.objects.get(pk=acme.pk).is_suspended


def test_a_voided_invoice_closes_its_case_and_lifts_the_suspension(cast, acme, send) -> None:
    send("invoice.payment_failed", failed_invoice(), T0)
    enforce(T0 + timedelta(days=15))
    assert Tenant.objects.get(pk=acme.pk).is_suspended
    send("invoice.voided", failed_invoice(status="void"), T0 + timedelta(days=16))
    assert not Tenant.objects.get(pk=acme.pk).is_suspended
    assert DunningCase.objects.get().resolved_at is not None
    # Final: a late, older failure of the same invoice reopens nothing.
    send("invoice.payment_failed", failed_invoice(), T0 + timedelta(days=1))
    assert DunningCase.objects.filter(resolved_at__isnull=True).count() == 0


def test_another_tenants_failed_payment_shows_nothing_here(cast, acme, send, client_for) -> None:
    StripeCustomer.objects.create(tenant=cast.globex, customer_id="cus_globex")
    obj = failed_invoice("in_globex")
    obj["customer"] = "cus_globex"
    send("invoice.payment_failed", obj, T0)
    assert BANNER not in page(client_for, cast.owner)
    assert BANNER in page(client_for, cast.globex_owner, "/t/globex/members/")
    assert [m.to for m in mail.outbox] == [["owner@globex.example"]]
    assert enforce(T0 + timedelta(days=15)) == 1
    assert not Tenant.objects.get(pk=acme.pk).is_suspended


def _banner_and_queries(membership) -> tuple[object, int]:
    request = RequestFactory().get(MEMBERS)
    request.user, request.tenant, request.membership = membership.user, membership.tenant, membership
    request.can = functools.partial(decisions.can, membership, tenant=membership.tenant)
    decisions.can(membership, "tenant.view")  # the entry check loaded the permission set
    with CaptureQueriesContext(connection) as ctx:
        banner = billing_context(request)["dunning_banner"]
        shown = bool(banner)
    return (banner if shown else None), len(ctx.captured_queries)


def test_the_banner_costs_no_query_once_cached_and_follows_every_change(
    cast, acme, send, django_capture_on_commit_callbacks
) -> None:
    owner = Membership.objects.select_related("tenant", "user").get(tenant=acme, user=cast.owner)
    viewer = Membership.objects.select_related("tenant", "user").get(tenant=acme, user=cast.viewer)
    assert _banner_and_queries(owner) == (None, 1)  # fills the cache
    assert _banner_and_queries(owner) == (None, 0)
    assert _banner_and_queries(viewer) == (None, 0)  # not a billing admin: never asks
    send("invoice.payment_failed", failed_invoice(), T0)
    banner, queries = _banner_and_queries(owner)  # the open case dropped the cached state
    assert (banner.grace_until, queries) == (T0 + timedelta(days=14), 1)
    assert _banner_and_queries(owner)[1] == 0
    with time_machine.travel(T0, tick=False), django_capture_on_commit_callbacks(execute=True):
        dunning.grace_extend(tenant=acme, days=3, reason="goodwill", by=cast.staff)
    assert _banner_and_queries(owner)[0].grace_until == T0 + timedelta(days=17)
    send("invoice.paid", failed_invoice(status="paid"), T0 + timedelta(days=1))
    assert _banner_and_queries(owner) == (None, 1)


# --- staff extend the grace --------------------------------------------------------------------

EXTEND = "/platform/billing/dunning/acme/extend/"


def test_staff_extend_grace_which_lifts_a_non_payment_suspension(cast, acme, send, client_for) -> None:
    send("invoice.payment_failed", failed_invoice(), T0)
    enforce(T0 + timedelta(days=15))
    assert Tenant.objects.get(pk=acme.pk).is_suspended
    at = T0 + timedelta(days=15, hours=1)
    with time_machine.travel(at, tick=False):
        staff = client_for(cast.staff)
        listing = staff.get("/platform/billing/dunning/").content.decode()
        assert "Acme Corp" in listing
        assert EXTEND in listing
        form = staff.get(EXTEND)
        assert form.status_code == 200
        assert "Goes into the audit log" in form.content.decode()
        response = staff.post(EXTEND, {"days": 7, "reason": "bank transfer announced, ticket 4711"})
    assert response.status_code == 302
    case = DunningCase.objects.get()
    assert case.grace_until == at + timedelta(days=7)
    assert case.grace_extensions == 1
    assert not Tenant.objects.get(pk=acme.pk).is_suspended
    events = AuditEvent.objects.filter(action="billing.grace_extended")
    assert sorted(str(e.tenant_id) for e in events) == sorted([str(acme.pk), "None"])
    assert events.first().metadata["reason"] == "bank transfer announced, ticket 4711"
    assert enforce(at + timedelta(days=6)) == 0
    assert enforce(at + timedelta(days=7, minutes=1)) == 1


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"days": 0, "reason": "x"}, "greater than or equal to 1"),
        ({"days": 91, "reason": "x"}, "less than or equal to 90"),
        ({"days": "many", "reason": "x"}, "Enter a whole number"),
        ({"days": 5, "reason": ""}, "This field is required"),
    ],
)
def test_bad_extensions_are_form_errors(cast, acme, send, client_for, data, message) -> None:
    send("invoice.payment_failed", failed_invoice(), T0)
    response = client_for(cast.staff).post(EXTEND, data)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert DunningCase.objects.get().grace_extensions == 0


def test_extending_without_an_open_case_says_so(cast, acme, client_for) -> None:
    response = client_for(cast.staff).post(EXTEND, {"days": 5, "reason": "goodwill"})
    assert response.status_code == 400
    assert "no unpaid failed invoice" in response.content.decode()
    assert not AuditEvent.objects.filter(action="billing.grace_extended").exists()


@pytest.mark.parametrize("who", ["owner", "admin", "globex_owner", "outsider"])
def test_only_staff_reach_the_dunning_pages(cast, acme, send, client_for, who) -> None:
    send("invoice.payment_failed", failed_invoice(), T0)
    client = client_for(getattr(cast, who))
    assert client.get("/platform/billing/dunning/").status_code == 404
    assert client.post(EXTEND, {"days": 30, "reason": "please"}).status_code == 404
    assert DunningCase.objects.get().grace_extensions == 0


def test_an_unknown_tenant_is_404(cast, client_for) -> None:
    assert client_for(cast.staff).get("/platform/billing/dunning/nope/extend/").status_code == 404


# --- dashboard card and beat ---------------------------------------------------------------------


def test_the_dashboard_card_for_billing_view(cast, acme, send, client_for) -> None:
    send("invoice.payment_failed", failed_invoice(), T0)
    admin = page(client_for, cast.admin, "/t/acme/")
    assert 'id="card-billing-title"' in admin
    assert "Read-only from 16 Mar 2026 unless paid" in admin
    assert 'id="card-billing-title"' not in page(client_for, cast.member, "/t/acme/")


def test_beat_runs_the_dunning_step_daily() -> None:
    entry = celery_app.conf.beat_schedule["billing-enforce-dunning"]
    assert entry["task"] == "apps.billing.tasks.enforce_dunning"
    assert entry["task"] in celery_app.tasks
    assert entry["schedule"].hour == {3}


# --- with the real worker and broker -------------------------------------------------------------


def test_the_notice_goes_out_once_through_the_real_worker(cast, celery_worker, wait_for) -> None:
    StripeCustomer.objects.create(tenant=cast.acme, customer_id="cus_acme")
    client = Client()
    mail.outbox.clear()
    first = event("invoice.payment_failed", failed_invoice())
    assert deliver(client, first).status_code == 200
    wait_for(lambda: DunningCase.objects.filter(notified_at__isnull=False).exists(), message="no notice sent")
    again = event("invoice.payment_failed", failed_invoice(attempt_count=2))
    assert deliver(client, again).status_code == 200
    wait_for(lambda: WebhookEvent.objects.filter(event_id=again["id"], status="done").exists())
    # A duplicate run for the same case (a retry, the daily re-send) sends nothing either.
    assert dunning.notice_send(case_id=DunningCase.objects.get().pk) == 0
    assert [m.to for m in mail.outbox] == [["owner@acme.example"]]
