"""Suspension for non-payment reaches the runtime API at once, and its 403 says why (not "role does not grant")."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.billing import dunning
from apps.billing.models import Reservation, UsageEvent
from tests.api.conftest import Api
from tests.billing.metering_helpers import _clean_budget_counters, event, make_priced  # noqa: F401
from tests.keys.helpers import bearer, issue_token, make_client


@pytest.fixture
def priced(cast):
    return make_priced(cast.acme, cast.globex)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("usage", event("s1")),
        ("budget/reservations", {"estimated_cost": "1"}),
    ],
)
def test_a_warm_api_process_sees_the_non_payment_suspension_and_its_end(
    api: Api, cast, priced, path, body, django_capture_on_commit_callbacks
) -> None:
    assert api.post("guard", {"model": "openai/gpt-test"}).status_code == 200  # the caller is warm in this process
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):  # an access version is published on commit
        dunning.case_open(tenant_id=cast.acme.pk, invoice_id="in_unpaid", now=now - timedelta(days=20))
        assert dunning.dunning_enforce(now=now) == 1
    response = api.post(path, body)
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert "suspended" in detail
    assert "does not grant" not in detail
    assert UsageEvent.objects.for_tenant(cast.acme).count() == 0
    assert Reservation.objects.for_tenant(cast.acme).count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        assert dunning.case_resolve(tenant_id=cast.acme.pk, invoice_id="in_unpaid", now=now)
    assert api.post(path, body).status_code == 200


def test_a_role_without_the_permission_still_says_so(api: Api, cast, priced) -> None:
    viewer = make_client(tenant=cast.acme, builtin_role="viewer")
    response = api.http.post(
        "/api/v1/usage", event("v1"), content_type="application/json", **bearer(issue_token(viewer))
    )
    assert response.status_code == 403
    assert "does not grant usage.report" in response.json()["detail"]
