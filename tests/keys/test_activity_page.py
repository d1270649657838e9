"""Token activity per client: hourly counts of the last 48 hours and the failures, paginated, tenant-scoped."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.access import services as access_services
from apps.keys import selectors, services
from apps.keys.models import TokenUse
from tests.keys.helpers import make_client

pytestmark = pytest.mark.django_db


@pytest.fixture
def clients(cast):
    access_services.builtin_roles_seed(tenant=cast.acme)
    ours = make_client(tenant=cast.acme, builtin_role="viewer", name="reporting").client
    other = make_client(tenant=cast.acme, builtin_role="viewer", name="other").client
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    for client, count in ((ours, 7), (other, 4242)):
        TokenUse.objects.create(
            tenant=cast.acme,
            client=client,
            audience="https://api",
            hour=hour,
            count=count,
            limited=2,
            last_ip="10.1.1.1",
        )
    TokenUse.objects.create(
        tenant=cast.acme, client=ours, audience="https://api", hour=hour - timedelta(hours=49), count=555
    )
    return ours, other


def _url(client) -> str:
    return reverse("keys:client_activity", kwargs={"tenant_slug": "acme", "pk": client.pk})


def test_hourly_counts_of_the_last_48_hours_only_for_this_client(cast, client_for, clients) -> None:
    ours, _ = clients
    page = client_for(cast.admin).get(_url(ours))
    assert page.status_code == 200
    html = page.content.decode()
    text = html[html.index("<main") : html.index("</main>")]  # not the footer's random hex request id
    assert "7 calls, of which 2 refused by the rate limit" in text
    assert "10.1.1.1" in text
    assert "4242" not in text  # the other client's row
    assert "555" not in text  # older than 48 hours


def test_failures_come_from_the_audit_log_for_this_client_only_and_page(cast, client_for, clients) -> None:
    ours, other = clients
    for _ in range(selectors.FAILURES_PAGE_SIZE + 3):
        services.client_auth_failed(client_id=ours.client_id, reason="bad_secret")
    services.client_auth_failed(client_id=other.client_id, reason="other_client_reason")
    http = client_for(cast.admin)
    first = http.get(_url(ours))
    text = first.content.decode()
    assert text.count("Client authentication failed") == selectors.FAILURES_PAGE_SIZE
    assert "other_client_reason" not in text
    page = selectors.client_failures(client=ours, cursor=None)
    older = http.get(_url(ours), {"cursor": page.next_cursor})
    assert older.content.decode().count("Client authentication failed") == 3


def test_a_forged_cursor_is_400_not_500(cast, client_for, clients) -> None:
    ours, _ = clients
    assert client_for(cast.admin).get(_url(ours), {"cursor": "not-a-cursor"}).status_code == 400


def test_rate_limits_are_editable_with_help_text(cast, client_for, clients) -> None:
    ours, _ = clients
    http = client_for(cast.admin)
    detail = http.get(reverse("keys:client_detail", kwargs={"tenant_slug": "acme", "pk": ours.pk})).content.decode()
    assert "requests a minute" in detail
    http.post(
        reverse("keys:client_rate_limit", kwargs={"tenant_slug": "acme", "pk": ours.pk}), {"rate_limit_per_minute": "0"}
    )
    ours.refresh_from_db()
    assert ours.rate_limit_per_minute is None  # 0 refused by the form
    http.post(
        reverse("keys:token_policy", kwargs={"tenant_slug": "acme"}),
        {"token_lifetime": "300", "rate_limit_per_minute": "90"},
    )
    assert selectors.token_policy_of(tenant=cast.acme).rate_limit_per_minute == 90
