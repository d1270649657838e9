"""The platform dead-letter page: staff only, every provider, keyset-paginated."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.billing.models import WebhookEvent

pytestmark = pytest.mark.django_db

URL = "/platform/billing/webhooks/"


def _dead(n: int, provider: str = "stripe") -> WebhookEvent:
    moment = timezone.now() - timedelta(minutes=n)
    return WebhookEvent.objects.create(
        provider=provider,
        event_id=f"evt_dead_{provider}_{n:03d}",
        event_type="AUTHORISATION" if provider == "adyen" else "invoice.paid",
        event_created=0,
        payload={},
        status=WebhookEvent.Status.DEAD,
        attempts=8,
        last_error="BillingError: unknown customer",
        received_at=moment,
        next_attempt_at=moment,
    )


def test_pages_through_every_dead_letter_once(cast, client_for) -> None:
    for n in range(54):
        _dead(n)
    _dead(54, provider="adyen")  # the oldest
    WebhookEvent.objects.filter(pk=_dead(99).pk).update(status="done")  # not a dead letter
    staff = client_for(cast.staff)
    first = staff.get(URL)
    assert first.status_code == 200
    seen = re.findall(r"evt_dead_\w+", first.content.decode())
    assert len(seen) == 50
    cursor = re.search(r'href="\?cursor=([^"]+)"', first.content.decode()).group(1)
    second = staff.get(f"{URL}?cursor={cursor}").content.decode()
    rest = re.findall(r"evt_dead_\w+", second)
    assert len(rest) == 5
    assert set(seen).isdisjoint(rest)
    assert "evt_dead_adyen_054" in rest
    assert "Adyen" in second
    assert 'rel="next"' not in second
    assert "evt_dead_stripe_099" not in first.content.decode() + second


def test_bad_cursor_is_400_and_members_see_nothing(cast, client_for) -> None:
    assert client_for(cast.staff).get(f"{URL}?cursor=!!!").status_code == 400
    assert client_for(cast.owner).get(URL).status_code == 404
