"""API-client console pages: the permission contract, the secret shown once, explain for clients; staff keys page."""

from __future__ import annotations

import pytest
from django.urls import reverse

from apps.access import services as access_services
from apps.audit.models import AuditEvent
from apps.keys import services
from apps.keys.models import ApiClient, ClientSecret, SigningKey, TokenPolicy
from tests.catalog.factories import DatasetFactory
from tests.contract import PageContract, PermissionContract, Ref, form_page
from tests.keys.helpers import issue_token, make_client

pytestmark = pytest.mark.django_db

CLIENT = {"kwargs": {"pk": Ref("api_client")}, "foreign": ({"pk": Ref("globex_client")},)}
SECRET = {
    "kwargs": {"pk": Ref("api_client"), "secret_id": Ref("api_secret")},
    "foreign": (
        {"pk": Ref("globex_client"), "secret_id": Ref("globex_secret")},
        {"pk": Ref("api_client"), "secret_id": Ref("globex_secret")},
    ),
}


@pytest.fixture
def world(cast):
    access_services.builtin_roles_seed(tenant=cast.acme)
    access_services.builtin_roles_seed(tenant=cast.globex)
    cast.api_client = make_client(tenant=cast.acme, builtin_role="viewer", name="reporting").client
    cast.api_secret = ClientSecret.objects.get(client=cast.api_client)
    cast.globex_client = make_client(tenant=cast.globex, builtin_role="viewer", name="globex-app").client
    cast.globex_secret = ClientSecret.objects.get(client=cast.globex_client)
    return cast


class TestApiClientPagesContract(PermissionContract):
    """Every API-client page needs apiclient.manage; Globex's client and secret ids are 404."""

    app_namespace = "keys"
    contracts = (
        PageContract("keys:client_list", "apiclient.manage"),
        # The member holding only apiclient.manage is built on the viewer role: it may hand that out.
        *form_page(
            "keys:client_create",
            "apiclient.manage",
            data={"name": "new-app", "role": "builtin:viewer", "signing_alg": "ES256"},
            ok_status=200,
        ),
        PageContract("keys:client_detail", "apiclient.manage", **CLIENT),
        PageContract("keys:client_activity", "apiclient.manage", **CLIENT),
        PageContract(
            "keys:client_rate_limit",
            "apiclient.manage",
            method="post",
            data={"rate_limit_per_minute": "120"},
            ok_status=302,
            **CLIENT,
        ),
        PageContract("keys:client_rotate", "apiclient.manage", method="post", data={"overlap_hours": "1"}, **CLIENT),
        PageContract("keys:client_disable", "apiclient.manage", method="post", ok_status=302, **CLIENT),
        PageContract("keys:client_enable", "apiclient.manage", method="post", ok_status=302, **CLIENT),
        PageContract("keys:secret_revoke", "apiclient.manage", method="post", ok_status=302, **SECRET),
        PageContract(
            "keys:token_policy", "apiclient.manage", method="post", data={"token_lifetime": "300"}, ok_status=302
        ),
    )

    @pytest.fixture
    def contract_world(self, world):
        return world

    def state(self, world):
        return (
            super().state(world),
            tuple(
                ApiClient.objects.order_by("pk").values_list(
                    "pk", "tenant_id", "name", "status", "rate_limit_per_minute"
                )
            ),
            tuple(ClientSecret.objects.order_by("pk").values_list("pk", "client_id", "revoked_at", "expires_at")),
            tuple(
                TokenPolicy.objects.order_by("pk").values_list("tenant_id", "token_lifetime", "rate_limit_per_minute")
            ),
        )


def test_created_secret_is_shown_once_with_a_curl_example(cast, client_for, world):
    admin = client_for(cast.admin)
    response = admin.post(
        reverse("keys:client_create", kwargs={"tenant_slug": "acme"}),
        {"name": "chatbot", "role": "builtin:analyst", "signing_alg": "ES256"},
    )
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    created = ApiClient.objects.get(name="chatbot")
    body = response.content.decode()
    secret = body.split('id="client-secret">')[1].split("<")[0]
    assert secret.startswith("bcs_")
    assert f"curl -s -u '{created.client_id}:{secret}'" in body
    assert f'data-copy="{secret}"' in body
    # Never again: not on the detail page, not in the database, not in the audit log.
    detail = admin.get(reverse("keys:client_detail", kwargs={"tenant_slug": "acme", "pk": created.pk}))
    assert secret not in detail.content.decode()
    assert not ClientSecret.objects.filter(digest__contains=secret).exists()
    assert not AuditEvent.objects.filter(metadata__icontains=secret[4:]).exists()
    assert services.client_authenticate(client_id=created.client_id, secret=secret).pk == created.pk


def test_a_member_cannot_create_a_client_stronger_than_themselves(cast, client_for, world):
    # The admin lacks billing.manage, so the owner role is out of reach.
    response = client_for(cast.admin).post(
        reverse("keys:client_create", kwargs={"tenant_slug": "acme"}),
        {"name": "too-strong", "role": "builtin:owner", "signing_alg": "ES256"},
    )
    assert response.status_code == 400
    assert "billing.manage" in response.content.decode()
    assert not ApiClient.objects.filter(name="too-strong").exists()


def test_explain_access_for_a_client(cast, client_for, world):
    dataset = DatasetFactory(tenant=cast.acme, name="sales", classification="internal")
    services.apiclient_grant_assign(client=world.api_client, action="dataset.read", obj=dataset)
    url = reverse("keys:client_detail", kwargs={"tenant_slug": "acme", "pk": world.api_client.pk})
    owner = client_for(cast.owner)
    response = owner.get(url, {"action": "dataset.read", "resource": f"dataset:{dataset.pk}"})
    assert response.status_code == 200
    assert "direct grant to client: dataset.read on dataset" in response.content.decode()
    denied = owner.get(url, {"action": "member.manage"})
    assert "Denied" in denied.content.decode()
    globex_dataset = DatasetFactory(tenant=cast.globex, name="globex-sales")
    hidden = owner.get(url, {"action": "dataset.read", "resource": f"dataset:{globex_dataset.pk}"})
    assert hidden.status_code == 400
    assert "globex-sales" not in hidden.content.decode()


def test_signing_keys_page_is_for_staff_only(cast, client_for, world):
    issue_token(make_client(tenant=cast.acme))
    url = reverse("platform:signing_keys")
    assert client_for(cast.owner).get(url).status_code == 404
    staff = client_for(cast.staff)
    key = SigningKey.objects.get(status="active")
    page = staff.get(url)
    assert page.status_code == 200
    assert key.kid in page.content.decode()
    revoke = reverse("platform:signing_key_revoke", kwargs={"pk": key.pk})
    assert client_for(cast.owner).post(revoke, {"reason": "x"}).status_code == 404
    assert staff.post(revoke, {"reason": "key file leaked"}).status_code == 302
    key.refresh_from_db()
    assert key.status == "revoked"
    assert SigningKey.objects.filter(status="active", alg="ES256").exists()
