"""bastion_client (clients/python) against the real app, in-process: token caching and refresh on 401."""

from __future__ import annotations

import io
from typing import Any

import pytest
import requests
from bastion_client import BastionClient, BastionError, RateLimited
from django.test import Client

from tests.api.conftest import Api

BASE = "http://testserver"


class DjangoAdapter(requests.adapters.BaseAdapter):
    """Sends a requests call to the Django app through the test client (no socket, same database)."""

    def __init__(self) -> None:
        super().__init__()
        self.django = Client()
        self.calls: list[tuple[str, str]] = []

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        path = request.path_url
        self.calls.append((request.method or "GET", path))
        headers = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in request.headers.items()}
        content_type = headers.pop("HTTP_CONTENT_TYPE", "application/octet-stream")
        headers.pop("HTTP_CONTENT_LENGTH", None)
        body = request.body or b""
        answer = self.django.generic(
            request.method or "GET",
            path,
            body.encode() if isinstance(body, str) else body,
            content_type=content_type,
            **headers,
        )
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers.update(dict(answer.items()))
        response.raw = io.BytesIO(answer.content)
        response.url = request.url or ""
        response.request = request
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def bastion(api: Api) -> BastionClient:
    session = requests.Session()
    session.mount(BASE, DjangoAdapter())
    return BastionClient(
        BASE, client_id=api.created.client.client_id, client_secret=api.created.secret, session=session
    )


def test_the_client_fetches_one_token_and_reuses_it(bastion: BastionClient, api: Api) -> None:
    assert bastion.me()["client"]["client_id"] == api.created.client.client_id
    decision = bastion.authorize(action="dataset.read", resource=("dataset", str(api.dataset.pk)))
    assert decision["allowed"] is True
    results = bastion.authorize_batch([{"action": "tenant.view"}, {"action": "billing.manage"}])
    assert [r["allowed"] for r in results] == [True, False]
    verdict = bastion.check_tool_call(tool_id=str(api.tool.pk), arguments={"q": "https://evil.example/"})
    assert verdict["allowed"] is False
    assert bastion.tokens_fetched == 1


def test_a_401_fetches_a_new_token_and_retries_once(bastion: BastionClient) -> None:
    bastion.me()
    bastion._token = "revoked.or.expired"  # what a server-side revocation looks like to the client
    assert bastion.me()["role"] == "developer"
    assert bastion.tokens_fetched == 2


def test_a_wrong_secret_is_an_error_not_a_loop(api: Api) -> None:
    session = requests.Session()
    adapter = DjangoAdapter()
    session.mount(BASE, adapter)
    client = BastionClient(BASE, client_id=api.created.client.client_id, client_secret="wrong", session=session)
    with pytest.raises(BastionError) as raised:
        client.me()
    assert raised.value.status == 401
    assert len(adapter.calls) == 1


def test_429_is_raised_with_retry_after(bastion: BastionClient, api: Api, settings) -> None:
    settings.API_RATE_LIMITS = {f"client:{api.created.client.client_id}": 1}
    bastion.me()
    with pytest.raises(RateLimited) as raised:
        bastion.me()
    assert raised.value.retry_after >= 1
    assert raised.value.problem["status"] == 429
