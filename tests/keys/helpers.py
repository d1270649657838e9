"""Make API clients and tokens in tests (also used by the API face's tests).

created = make_client(tenant=cast.acme, builtin_role="developer")
token = issue_token(created)                      # straight from the service
token = fetch_token(client, created)              # through POST /api/v1/oauth/token
client.post("/api/v1/authorize", ..., **bearer(token))
"""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import quote_plus, urlencode

from django.test import Client

from apps.access.models import Role
from apps.keys import conf, services, tokens
from apps.keys.services import CreatedClient
from apps.tenants.models import Membership, Tenant

TOKEN_URL = "/api/v1/oauth/token"
FORM = "application/x-www-form-urlencoded"  # what RFC 6749 requires (the test client's default is multipart)


def make_client(
    *,
    tenant: Tenant,
    builtin_role: str = "developer",
    role: Role | None = None,
    name: str | None = None,
    audiences: list[str] | None = None,
    signing_alg: str = "ES256",
    actor: Membership | None = None,
) -> CreatedClient:
    """A new active client of ``tenant`` (``.client``) with its plain secret (``.secret``)."""
    return services.apiclient_create(
        tenant=tenant,
        name=name or f"client-{tenant.slug}-{len(tenant.slug)}-{id(object())}",
        builtin_role="" if role is not None else builtin_role,
        role=role,
        audiences=audiences,
        signing_alg=signing_alg,
        actor=actor,
    )


def issue_token(created: CreatedClient, *, audience: str = "", scope: str = "") -> str:
    """A signed access token for the client, without HTTP (default audience: the runtime API)."""
    return services.token_issue(client=created.client, audience=audience, scope=scope).access_token


def basic(client_id: str, secret: str) -> dict[str, str]:
    """The ``client_secret_basic`` header (id and secret form-encoded before Base64, RFC 6749 §2.3.1)."""
    raw = f"{quote_plus(client_id)}:{quote_plus(secret)}".encode()
    return {"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(raw).decode()}


def request_token(client: Client, created: CreatedClient, **form: str) -> Any:
    """POST the token endpoint with client_secret_basic; returns the response."""
    data = {"grant_type": "client_credentials", **form}
    return client.post(TOKEN_URL, urlencode(data), FORM, **basic(created.client.client_id, created.secret))


def fetch_token(client: Client, created: CreatedClient, **form: str) -> str:
    response = request_token(client, created, **form)
    assert response.status_code == 200, response.content
    return response.json()["access_token"]


def bearer(token: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def default_audience() -> str:
    return conf.default_audience()


def reset_caches() -> None:
    """Forget this process's verified tokens, clients and key ring (between tests)."""
    tokens.clear_local_caches()
