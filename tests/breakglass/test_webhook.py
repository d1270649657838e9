"""The incident webhook from the attacker's side (#11, item 5 and "Bad input and races").

A forged, stale or replayed delivery is a 400 and changes nothing; an unknown
token is a 404; malformed JSON a 400; a body over the limit a 413; never a 500.
The good deliveries (generic and PagerDuty v3) end the elevations naming the
incident, in this tenant only.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from apps.access import decisions
from apps.audit.models import AuditEvent
from apps.breakglass import incidents, secretbox, services
from apps.breakglass.models import Elevation, IncidentClosure, IncidentWebhook, Policy, WebhookReceipt
from apps.tenants.models import Tenant
from tests.breakglass.conftest import ask, member
from tests.breakglass.webhook_helpers import (
    deliver,
    generic_body,
    generic_headers,
    pagerduty_body,
    pagerduty_headers,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def hooked(world):
    """Acme's webhook (and its secret), an active elevation and a pending request naming INC-123."""
    cache.clear()
    hook, secret = incidents.incident_webhook_enable(tenant=world.cast.acme, actor=world.owner)
    active = services.elevation_approve(
        tenant=world.cast.acme, elevation_id=ask(world, incident_ref="INC-123").pk, approver=world.approver1
    )
    world.pager = _admin_policy(world)
    pending = ask(world, who=world.admin, incident_ref="inc-123", policy=world.pager)
    world.hook, world.secret, world.active, world.pending = hook, secret, active, pending
    world.url = reverse("breakglass_webhooks:incident", args=[hook.token])
    return world


def _state():
    return (
        tuple(Elevation.objects.order_by("pk").values_list("pk", "status", "ended_at")),
        IncidentClosure.objects.count(),
        WebhookReceipt.objects.count(),
        Tenant.objects.order_by("pk").values_list("access_version", flat=True)[0],
        AuditEvent.objects.exclude(action="breakglass.webhook_rejected").count(),
    )


def _still_elevated(w) -> bool:
    return decisions.can(member(w.cast, w.cast.member), "dataset.write")


# --- what works ----------------------------------------------------------------------------------


def test_generic_resolved_ends_the_elevation_and_cancels_the_pending_request(
    hooked, django_capture_on_commit_callbacks
) -> None:
    w = hooked
    assert _still_elevated(w)
    body = generic_body("INC-123")
    with django_capture_on_commit_callbacks(execute=True):
        response = deliver(w.url, body, generic_headers(w.secret, body))
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "closed", "incident": "INC-123", "ended": 1, "cancelled": 1}
    assert Elevation.objects.get(pk=w.active.pk).status == Elevation.Status.ENDED
    assert Elevation.objects.get(pk=w.pending.pk).status == Elevation.Status.CANCELLED
    assert not _still_elevated(w)  # the binding ended with it: refused on the very next check
    end = AuditEvent.objects.get(action="breakglass.end", metadata__elevation=w.active.pk)
    assert end.metadata["incident"] == "INC-123"
    assert end.metadata["source"] == "generic"
    assert end.actor_display == "incident webhook"
    assert AuditEvent.objects.filter(action="breakglass.cancel", metadata__elevation=w.pending.pk).count() == 1
    closure = IncidentClosure.objects.get()
    assert (closure.ended, closure.cancelled, closure.source, closure.closed_by) == (1, 1, "generic", None)


def test_other_statuses_are_acknowledged_and_change_nothing(hooked) -> None:
    body = generic_body("INC-123", status="acknowledged")
    before = _state()
    response = deliver(hooked.url, body, generic_headers(hooked.secret, body))
    assert response.status_code == 200
    assert response.json()["status"] == "ignored"
    after = _state()
    assert after[:2] == before[:2]


def test_pagerduty_incident_resolved_closes_by_incident_id(hooked) -> None:
    w = hooked
    elevation = services.elevation_approve(
        tenant=w.cast.acme,
        elevation_id=ask(w, who=w.owner, incident_ref="PGR0VU2", policy=w.pager).pk,
        approver=w.approver1,
    )
    body = pagerduty_body(incident_id="PGR0VU2")
    response = deliver(w.url, body, pagerduty_headers(w.secret, body))
    assert response.status_code == 200, response.content
    assert response.json()["ended"] == 1
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ENDED
    assert Elevation.objects.get(pk=w.active.pk).status == Elevation.Status.ACTIVE  # INC-123 is another incident
    assert IncidentClosure.objects.get().source == "pagerduty"


def test_pagerduty_other_events_are_ignored(hooked) -> None:
    before = _state()
    body = pagerduty_body(incident_id="INC-123", event_type="incident.acknowledged")
    response = deliver(hooked.url, body, pagerduty_headers(hooked.secret, body))
    assert (response.status_code, response.json()["status"]) == (200, "ignored")
    assert _state()[0] == before[0]


def test_the_webhook_never_touches_another_tenant(hooked) -> None:
    w = hooked
    globex_policy = Policy.objects.create(
        tenant=w.cast.globex,
        name="G",
        role=w.policy.role.__class__.objects.get(tenant=w.cast.globex, key="analyst"),
        approvals_required=1,
        max_duration_minutes=60,
    )
    now = datetime.now(UTC)
    globex = Elevation.objects.create(
        tenant=w.cast.globex,
        policy=globex_policy,
        requester=w.globex_owner,
        role=globex_policy.role,
        duration_minutes=10,
        justification="x",
        incident_ref="INC-123",
        approvals_required=1,
        requested_at=now,
        pending_until=now + timedelta(hours=1),
    )
    body = generic_body("INC-123")
    assert deliver(w.url, body, generic_headers(w.secret, body)).status_code == 200
    assert Elevation.objects.get(pk=globex.pk).status == Elevation.Status.PENDING


# --- attacks -------------------------------------------------------------------------------------


def _refused(w, body: bytes, headers: dict[str, str], status: int = 400, url: str | None = None):
    before = _state()
    response = deliver(url or w.url, body, headers)
    assert response.status_code == status, response.content
    assert _state() == before
    assert _still_elevated(w)
    return response


def test_bad_signature_refused_and_audited(hooked) -> None:
    body = generic_body()
    response = _refused(hooked, body, generic_headers("not-the-secret-at-all", body))
    assert b"bad signature" in response.content
    event = AuditEvent.objects.get(action="breakglass.webhook_rejected")
    assert (event.result, event.tenant_id, event.metadata["reason"]) == ("denied", hooked.cast.acme.pk, "bad signature")


def test_a_body_changed_after_signing_is_refused(hooked) -> None:
    headers = generic_headers(hooked.secret, generic_body("INC-999"))
    _refused(hooked, generic_body("INC-123"), headers)


def test_pagerduty_signature_over_another_body_refused(hooked) -> None:
    signed = pagerduty_body(incident_id="OTHER")
    _refused(hooked, pagerduty_body(incident_id="INC-123"), pagerduty_headers(hooked.secret, signed))


def test_another_tenants_secret_is_refused(hooked) -> None:
    _, globex_secret = incidents.incident_webhook_enable(tenant=hooked.cast.globex, actor=hooked.globex_owner)
    body = generic_body()
    _refused(hooked, body, generic_headers(globex_secret, body))


@pytest.mark.parametrize("skew", [-301, -3600, 301, 86400 * 365])
def test_stale_or_future_timestamp_refused(hooked, skew) -> None:
    body = generic_body()
    response = _refused(hooked, body, generic_headers(hooked.secret, body, ts=int(time.time()) + skew))
    assert b"5-minute window" in response.content


def test_stale_pagerduty_event_refused(hooked) -> None:
    body = pagerduty_body(incident_id="INC-123", occurred_at=datetime.now(UTC) - timedelta(minutes=6))
    _refused(hooked, body, pagerduty_headers(hooked.secret, body))


def test_replayed_generic_delivery_refused(hooked) -> None:
    w = hooked
    body = generic_body("INC-NONE")
    headers = generic_headers(w.secret, body)
    assert deliver(w.url, body, headers).status_code == 200
    response = _refused(w, body, headers)
    assert b"replayed" in response.content


def test_replayed_pagerduty_event_id_refused_even_with_a_new_body(hooked) -> None:
    w = hooked
    first = pagerduty_body(incident_id="NOPE", event_id="01EVENTONE")
    assert deliver(w.url, first, pagerduty_headers(w.secret, first)).status_code == 200
    # Same event id, a body re-signed differently (another incident): still a replay.
    again = pagerduty_body(incident_id="INC-123", event_id="01EVENTONE")
    _refused(w, again, pagerduty_headers(w.secret, again))


def test_unknown_or_malformed_token_is_404(hooked) -> None:
    body = generic_body()
    headers = generic_headers(hooked.secret, body)
    for token in ("A" * 32, "x", "../../etc", "a" * 65, hooked.hook.token[:-1] + "%3F"):
        url = f"/breakglass/webhooks/incidents/{token}/"
        _refused(hooked, body, headers, status=404, url=url)


def test_a_disabled_webhook_is_404(hooked) -> None:
    incidents.incident_webhook_disable(tenant=hooked.cast.acme, actor=hooked.owner)
    body = generic_body()
    response = deliver(hooked.url, body, generic_headers(hooked.secret, body))
    assert response.status_code == 404
    assert Elevation.objects.get(pk=hooked.active.pk).status == Elevation.Status.ACTIVE


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"",
        b"[1, 2]",
        b'"INC-123"',
        b'{"status": "resolved"}',
        b'{"incident": "", "status": "resolved"}',
        b'{"incident": {"id": 1}, "status": "resolved"}',
        b'{"incident": "INC-123"}',
        b'{"incident": "' + b"x" * 101 + b'", "status": "resolved"}',
        b"\xff\xfe\x00garbage",
    ],
)
def test_malformed_signed_payloads_are_400(hooked, body) -> None:
    _refused(hooked, body, generic_headers(hooked.secret, body))


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Bastion-Timestamp": "now", "X-Bastion-Signature": "v1=00"},
        {"X-Bastion-Timestamp": "1" * 40, "X-Bastion-Signature": "v1=00"},
        {"X-Bastion-Timestamp": "99999999999", "X-Bastion-Signature": "v1=00"},
        {"X-Bastion-Signature": "v1=00"},
        {"X-PagerDuty-Signature": ""},
        {"X-PagerDuty-Signature": "v0=abc"},
        {"X-PagerDuty-Signature": ",".join(["v1=" + "0" * 64] * 5000)},
        {"X-PagerDuty-Signature": "v1=" + "é" * 64},
        {"X-Bastion-Timestamp": str(int(time.time())), "X-Bastion-Signature": "v1=" + "\u00ff" * 64},
        {"X-Bastion-Timestamp": "١٢٣", "X-Bastion-Signature": "v1=00"},
    ],
)
def test_junk_headers_are_400_never_500(hooked, headers) -> None:
    _refused(hooked, generic_body(), headers)


def test_a_malformed_pagerduty_payload_signed_correctly_is_400(hooked) -> None:
    for body in (
        b'{"event": "x"}',
        b'{"event": {"id": "e1", "event_type": "incident.resolved"}}',
        b'{"event": {"id": "e2", "event_type": "incident.resolved", "occurred_at": "yesterday"}}',
    ):
        _refused(hooked, body, pagerduty_headers(hooked.secret, body))


def test_one_megabyte_body_is_413_unread(hooked) -> None:
    body = b'{"incident": "INC-123", "status": "resolved", "pad": "' + b"x" * (1024 * 1024) + b'"}'
    _refused(hooked, body, generic_headers(hooked.secret, body), status=413)


def test_only_post(hooked) -> None:
    assert Client().get(hooked.url).status_code == 405


def test_rejections_are_audited_once_a_minute_per_source(hooked) -> None:
    body = generic_body()
    for _ in range(5):
        deliver(hooked.url, body, generic_headers("forged-secret-xxxxxxxx", body))
    assert AuditEvent.objects.filter(action="breakglass.webhook_rejected").count() == 1


# --- the secret ------------------------------------------------------------------------------------


def test_secret_is_stored_encrypted_and_never_audited(hooked) -> None:
    hook = IncidentWebhook.objects.get()
    assert hooked.secret not in hook.secret_encrypted
    assert secretbox.decrypt(hook.secret_encrypted) == hooked.secret
    assert not AuditEvent.objects.filter(metadata__icontains=hooked.secret).exists()
    for event in AuditEvent.objects.all():
        assert hooked.secret not in str(event.metadata)


def test_rotation_keeps_the_previous_secret_until_retired(hooked) -> None:
    w = hooked
    _, new = incidents.incident_webhook_rotate(tenant=w.cast.acme, actor=w.owner)
    assert new != w.secret
    for n, secret in enumerate((w.secret, new, [w.secret, new])):
        body = generic_body(f"INC-R{n}")
        assert deliver(w.url, body, generic_headers(secret, body)).status_code == 200, secret
    incidents.incident_webhook_retire_previous(tenant=w.cast.acme, actor=w.owner)
    body = generic_body("INC-R9")
    _refused(w, body, generic_headers(w.secret, body))
    assert deliver(w.url, body, generic_headers(new, body)).status_code == 200


def test_the_previous_secret_stops_after_the_grace_period(hooked, settings) -> None:
    settings.BREAKGLASS_WEBHOOK_ROTATION_GRACE_HOURS = 0
    incidents.incident_webhook_rotate(tenant=hooked.cast.acme, actor=hooked.owner)
    body = generic_body()
    _refused(hooked, body, generic_headers(hooked.secret, body))


def test_a_secret_from_the_incident_tool_can_be_stored(hooked) -> None:
    pd_secret = "pd-made-this-secret-0123456789abcdef"
    incidents.incident_webhook_rotate(tenant=hooked.cast.acme, actor=hooked.owner, secret=pd_secret)
    body = pagerduty_body(incident_id="INC-123")
    assert deliver(hooked.url, body, pagerduty_headers(pd_secret, body)).status_code == 200
    with pytest.raises(services.BreakglassError, match="16 to 200"):
        incidents.incident_webhook_rotate(tenant=hooked.cast.acme, actor=hooked.owner, secret="short")


def test_only_policy_editors_manage_the_webhook(hooked) -> None:
    for who in (hooked.member, hooked.approver1, hooked.globex_owner):
        with pytest.raises(services.BreakglassError):
            incidents.incident_webhook_rotate(tenant=hooked.cast.acme, actor=who)
    assert secretbox.decrypt(IncidentWebhook.objects.get(tenant=hooked.cast.acme).secret_encrypted) == hooked.secret


def test_the_secret_page_shows_the_secret_once(hooked, client_for) -> None:
    client = client_for(hooked.cast.owner)
    url = reverse("breakglass:incident_webhook", kwargs={"tenant_slug": "acme"})
    response = client.post(url, {"action": "rotate"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    secret = secretbox.decrypt(IncidentWebhook.objects.get().secret_encrypted)
    assert secret in response.content.decode()
    page = client.get(url).content.decode()
    assert secret not in page
    assert hooked.secret not in page
    assert hooked.hook.token in page  # the URL stays visible


def _admin_policy(w):
    """A second Acme policy the admin may ask for (its own open-request slot)."""
    return services.policy_create(
        tenant=w.cast.acme,
        actor=w.owner,
        name="Pager",
        role=w.policy.role,
        approvals_required=1,
        max_duration_minutes=60,
        requester_roles=["admin", "owner"],
        approver_roles=["approver"],
    )


def test_old_replay_keys_are_forgotten_by_the_sweep(hooked) -> None:
    body = generic_body("INC-NONE")
    assert deliver(hooked.url, body, generic_headers(hooked.secret, body)).status_code == 200
    assert incidents.receipts_purge() == 0  # still inside the window: kept
    assert incidents.receipts_purge(now=datetime.now(UTC) + timedelta(minutes=16)) == 1
    assert not WebhookReceipt.objects.exists()
