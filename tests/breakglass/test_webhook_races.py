"""Incident webhook races on real PostgreSQL (committed transactions, one connection per thread).

The replay key's unique constraint decides between two copies of one delivery
arriving at the same moment; an incident closing while an approval lands ends
up with nothing active.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from apps.audit.models import AuditEvent
from apps.breakglass import incidents, services
from apps.breakglass.models import Elevation, IncidentClosure, WebhookReceipt
from tests.breakglass.conftest import ask
from tests.breakglass.test_worker import _race
from tests.breakglass.webhook_helpers import generic_body, generic_headers, pagerduty_body, pagerduty_headers

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def hooked(world):
    cache.clear()
    hook, secret = incidents.incident_webhook_enable(tenant=world.cast.acme, actor=world.owner)
    world.secret = secret
    world.url = reverse("breakglass_webhooks:incident", args=[hook.token])
    return world


def _post(url: str, body: bytes, headers: dict[str, str]):
    return lambda: Client().post(url, data=body, content_type="application/json", headers=headers).status_code


@pytest.mark.parametrize("sender", ["generic", "pagerduty"])
def test_one_delivery_twice_at_the_same_moment_acts_once(hooked, sender) -> None:
    w = hooked
    ref = "INC-123" if sender == "generic" else "PGR0VU2"
    elevation = services.elevation_approve(
        tenant=w.cast.acme, elevation_id=ask(w, incident_ref=ref).pk, approver=w.approver1
    )
    if sender == "generic":
        body = generic_body(ref)
        headers = generic_headers(w.secret, body)
    else:
        body = pagerduty_body(incident_id=ref)
        headers = pagerduty_headers(w.secret, body)
    results = _race(_post(w.url, body, headers), _post(w.url, body, headers))
    assert sorted(results) == [200, 400], results
    assert Elevation.objects.get(pk=elevation.pk).status == Elevation.Status.ENDED
    assert IncidentClosure.objects.count() == 1
    assert WebhookReceipt.objects.count() == 1
    assert AuditEvent.objects.filter(action="breakglass.end", metadata__elevation=elevation.pk).count() == 1


def test_closing_while_an_approval_lands_leaves_nothing_active(hooked) -> None:
    w = hooked
    pending = ask(w, incident_ref="INC-55")
    body = generic_body("INC-55")
    approve = lambda: services.elevation_approve(  # noqa: E731 - a thunk for the race
        tenant=w.cast.acme, elevation_id=pending.pk, approver=w.approver1
    )
    results = _race(approve, _post(w.url, body, generic_headers(w.secret, body)))
    assert results[1] == 200, results
    # Either the approval came first (activated, then ended by the closure) or the closure did
    # (cancelled, and the approval refused): never an elevation left running.
    assert Elevation.objects.get(pk=pending.pk).status in (Elevation.Status.ENDED, Elevation.Status.CANCELLED)
    assert not Elevation.objects.filter(status=Elevation.Status.ACTIVE).exists()
