"""Shared set-up for the SSO flow, view and service tests: plain helpers, no tests and no fixtures.

The browser side is Django's test client on https://bastion.example.com (the
host the SAML helpers sign responses for); the IdP side is the real helpers:
signed SAML responses from ``saml_helpers`` and the loopback OpenID provider.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.test import Client
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.sso.models import SSOConnection, VerifiedDomain
from apps.tenants.models import Tenant
from tests.sso import saml_helpers as h

HOST = "bastion.example.com"


class HttpsClient(Client):
    """A test client that always speaks https to ``HOST`` (the ACS and callback URLs are https)."""

    def __init__(self, **defaults: Any) -> None:
        super().__init__(HTTP_HOST=HOST, **defaults)

    def generic(self, method: str, path: Any, data: Any = "", content_type: Any = None, secure: bool = True, **extra):  # type: ignore[override]
        kwargs = {"content_type": content_type} if content_type is not None else {}
        return super().generic(method, path, data, secure=True, **kwargs, **extra)


def https_client(user: Any = None) -> HttpsClient:
    client = HttpsClient()
    if user is not None:
        client.force_login(user)
    return client


def verify_domain(tenant: Tenant | None, domain: str, *, verified: bool = True) -> VerifiedDomain:
    return VerifiedDomain.objects.create(
        tenant=tenant, domain=domain, dns_token="t" * 32, verified_at=timezone.now() if verified else None
    )


def saml_connection(tenant: Tenant, *, status: str = SSOConnection.Status.ENABLED, **config: Any) -> SSOConnection:
    """A SAML connection of ``tenant`` trusting the helpers' IdP key, enabled (and tested) by default."""
    connection = h.make_connection(tenant=tenant, **config)
    connection.status = status
    if status != SSOConnection.Status.DRAFT:
        connection.config = {**connection.config, "tested_at": timezone.now().isoformat()}
    connection.save()
    return connection


def newest_flow(client: Client, connection: SSOConnection) -> tuple[str, dict[str, Any]]:
    """The session's most recent flow for ``connection``: (key, flow)."""
    flows = client.session.get("sso_flows") or {}
    mine = {k: f for k, f in flows.items() if f["connection"] == str(connection.public_id)}
    assert mine, "no sign-in flow in the session"
    key = max(mine, key=lambda k: mine[k]["at"])
    return key, mine[key]


def relay_state(location: str) -> str:
    return parse_qs(urlsplit(location).query)["RelayState"][0]


def acs_path(connection: SSOConnection) -> str:
    return f"/sso/saml/{connection.public_id}/acs/"


def start_saml(client: Client, connection: SSOConnection, *, next_url: str = "") -> tuple[str, str]:
    """Open the start URL; returns (RelayState, AuthnRequest id) the IdP would echo."""
    query = f"?next={next_url}" if next_url else ""
    response = client.get(f"/sso/start/{connection.public_id}/{query}")
    assert response.status_code == 302, response.content[:500]
    assert response["Location"].startswith(h.IDP_SSO_URL)
    key, flow = newest_flow(client, connection)
    assert relay_state(response["Location"]) == key
    return key, flow["request_id"]


def signed_saml_response(connection: SSOConnection, request_id: str | None, **spec: Any) -> str:
    """A base64 SAMLResponse signed by the IdP key, answering ``request_id``."""
    return h.encode(h.signed_response(h.spec_for(connection, in_response_to=request_id, **spec)))


def post_acs(client: Client, connection: SSOConnection, saml_response: str, relay: str = "", **extra: str):
    data = {"SAMLResponse": saml_response, **({"RelayState": relay} if relay else {}), **extra}
    return client.post(acs_path(connection), data)


def saml_sign_in(client: Client, connection: SSOConnection, *, next_url: str = "", **spec: Any):
    """The whole SP-initiated round trip; returns the ACS response."""
    key, request_id = start_saml(client, connection, next_url=next_url)
    return post_acs(client, connection, signed_saml_response(connection, request_id, **spec), key)


def attributes(email: str, *, groups: tuple[str, ...] = ("engineering", "admins"), first: str = "Ada") -> dict:
    return {"email": [email], "firstName": [first], "lastName": ["Lovelace"], "groups": list(groups)}


def events(action: str, *, tenant: Tenant | None = None) -> list[AuditEvent]:
    qs = AuditEvent.objects.filter(action=action)
    qs = qs.for_tenant(tenant) if tenant is not None else qs
    return list(qs.order_by("seq", "id"))


def signed_in_user_id(client: Client) -> str | None:
    return client.session.get("_auth_user_id")
