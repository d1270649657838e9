"""Rate limits set on the client and on the tenant's token policy reach a warm process at once."""

from __future__ import annotations

import pytest

from apps.keys import services as keys_services
from tests.api.conftest import Api

BODY = {"subject": {"type": "client"}, "action": "tenant.view"}


def test_a_client_limit_set_in_the_console_binds_a_warm_process(api: Api, django_capture_on_commit_callbacks) -> None:
    assert api.post("authorize", BODY)["RateLimit-Policy"].startswith('"default"')  # warm now
    with django_capture_on_commit_callbacks(execute=True):
        keys_services.apiclient_rate_limit_set(client=api.created.client, rate_limit_per_minute=2)
    statuses = [api.post("authorize", BODY) for _ in range(4)]
    assert statuses[0]["RateLimit-Policy"] == '"client";q=2;w=60'
    assert [r.status_code for r in statuses][-1] == 429


def test_the_tenant_policy_applies_when_the_client_has_none(api: Api, cast, django_capture_on_commit_callbacks) -> None:
    api.post("authorize", BODY)
    with django_capture_on_commit_callbacks(execute=True):
        keys_services.token_policy_set(tenant=cast.acme, token_lifetime=600, rate_limit_per_minute=5)
    response = api.post("authorize", BODY)
    assert response["RateLimit-Policy"] == '"tenant";q=5;w=60'
    with django_capture_on_commit_callbacks(execute=True):
        keys_services.apiclient_rate_limit_set(client=api.created.client, rate_limit_per_minute=50)
    assert api.post("authorize", BODY)["RateLimit-Policy"] == '"client";q=50;w=60'


@pytest.mark.parametrize("value", [0, 10_000_001])
def test_out_of_range_limits_are_refused(api: Api, value: int) -> None:
    with pytest.raises(keys_services.KeysError):
        keys_services.apiclient_rate_limit_set(client=api.created.client, rate_limit_per_minute=value)
