"""Credential pages: the permission contract, forms, check/rotate/record against a real OpenBao, the due page."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.keys.credentials import services
from apps.keys.credentials.services import CredentialInput
from apps.keys.models import Credential, CredentialRotation, CredentialSettings
from apps.tenants.models import Membership
from tests.contract import PageContract, PermissionContract, Ref, form_page

pytestmark = pytest.mark.django_db

SECRET = "sk-PAGE-SECRET-0f9e8d7c6b5a"
PASTED = "pasted-new-provider-key-1234567890"
CRED = {"kwargs": {"pk": Ref("credential")}, "foreign": ({"pk": Ref("globex_credential")},)}


def make_credential(tenant, *, name="OpenAI prod", reference=None, owner=None, rotated_days_ago=None, interval=90):
    last = timezone.now() - timedelta(days=rotated_days_ago) if rotated_days_ago is not None else None
    return services.credential_create(
        tenant=tenant,
        data=CredentialInput(
            name=name,
            provider="openai",
            environment="prod",
            purpose="support bot",
            owner=owner,
            reference=reference or f"vault://secret/bastion/{tenant.slug}/openai#api_key",
            rotation_interval_days=interval,
        ),
        last_rotated_at=last,
    )


@pytest.fixture
def world(cast):
    owner = Membership.objects.get(tenant=cast.acme, user=cast.member)
    cast.credential = make_credential(cast.acme, owner=owner)
    cast.globex_credential = make_credential(cast.globex, name="Globex key")
    return cast


def _url(name: str, **kwargs) -> str:
    return reverse(f"credentials:{name}", kwargs={"tenant_slug": "acme", **kwargs})


class TestCredentialPagesContract(PermissionContract):
    """Every credential page needs key.manage; Globex's credential id is a 404 with every method."""

    app_namespace = "credentials"
    contracts = (
        PageContract("credentials:list", "key.manage"),
        PageContract("credentials:due", "key.manage"),
        *form_page(
            "credentials:create",
            "key.manage",
            data={
                "name": "Anthropic",
                "provider": "anthropic",
                "environment": "dev",
                "reference": "env://BASTION_CRED_ACME__ANTHROPIC",
                "rotation_interval_days": "30",
            },
        ),
        PageContract("credentials:detail", "key.manage", **CRED),
        *form_page(
            "credentials:edit",
            "key.manage",
            data={
                "name": "OpenAI prod",
                "provider": "openai",
                "environment": "prod",
                "reference": "vault://secret/bastion/acme/openai2#api_key",
                "rotation_interval_days": "60",
            },
            **CRED,
        ),
        PageContract("credentials:check", "key.manage", method="post", ok_status=302, **CRED),
        PageContract("credentials:rotate", "key.manage", method="post", ok_status=302, **CRED),
        PageContract(
            "credentials:record", "key.manage", method="post", data={"rotated_on": "2026-01-02"}, ok_status=302, **CRED
        ),
        PageContract("credentials:delete", "key.manage", method="post", ok_status=302, **CRED),
        PageContract(
            "credentials:settings", "key.manage", method="post", data={"allow_vault_writes": "on"}, ok_status=302
        ),
    )

    @pytest.fixture
    def contract_world(self, world):
        return world

    def state(self, world):
        return (
            super().state(world),
            tuple(Credential.objects.order_by("pk").values_list("pk", "name", "reference", "next_due_on")),
            tuple(CredentialRotation.objects.order_by("pk").values_list("pk", "credential_id")),
            tuple(CredentialSettings.objects.order_by("pk").values_list("tenant_id", "allow_vault_writes")),
        )


# --- create and edit ---------------------------------------------------------------------------


def test_create_stores_the_reference_and_the_due_date(cast, client_for):
    response = client_for(cast.admin).post(
        _url("create"),
        {
            "name": "OpenAI – support bot",
            "provider": "openai",
            "environment": "prod",
            "owner": Membership.objects.get(tenant=cast.acme, user=cast.member).pk,
            "reference": "vault://secret/bastion/acme/openai#api_key",
            "rotation_interval_days": "90",
            "last_rotated_on": (timezone.now().date() - timedelta(days=100)).isoformat(),
        },
    )
    assert response.status_code == 302
    credential = Credential.objects.get(tenant=cast.acme)
    assert credential.next_due_on == timezone.now().date() - timedelta(days=10)
    assert credential.due_state == "overdue"
    event = AuditEvent.objects.get(action="credential.created")
    assert event.tenant_id == cast.acme.pk
    assert event.metadata["reference"] == "vault://secret/bastion/acme/openai#api_key"


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("vault://secret/bastion/globex/openai#api_key", "under secret/bastion/acme/"),
        ("vault://secret/bastion/acme/../globex/x#k", "no &#x27;..&#x27;"),
        ("sk-live-abc123", "Start the reference with"),
        ("env://SECRET_KEY", "BASTION_CRED_ACME__"),
    ],
)
def test_create_refuses_references_outside_the_tenant(cast, client_for, reference, message):
    response = client_for(cast.admin).post(
        _url("create"),
        {
            "name": "x",
            "provider": "openai",
            "environment": "prod",
            "reference": reference,
            "rotation_interval_days": "90",
        },
    )
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Credential.objects.exists()


def test_create_refuses_bad_input_with_form_errors(cast, client_for, world):
    globex_owner = Membership.objects.get(tenant=cast.globex, user=cast.globex_owner)
    base = {"name": "y", "provider": "openai", "environment": "prod", "reference": "env://BASTION_CRED_ACME__Y"}
    admin = client_for(cast.admin)
    for bad in (
        {"rotation_interval_days": "0"},
        {"rotation_interval_days": "-5"},
        {"rotation_interval_days": "99999"},
        {"rotation_interval_days": "abc"},
        {"rotation_interval_days": "90", "owner": globex_owner.pk},  # another tenant's member
        {"rotation_interval_days": "90", "environment": "qa"},
        {"rotation_interval_days": "90", "name": "OpenAI prod"},  # taken
        {"rotation_interval_days": "90", "last_rotated_on": "2999-01-01"},
        {"rotation_interval_days": "90", "name": "z" * 81},
    ):
        response = admin.post(_url("create"), {**base, **bad})
        assert response.status_code == 400, bad
        assert "Nothing was saved" in response.content.decode()
    assert Credential.objects.filter(tenant=cast.acme).count() == 1


def test_edit_moves_the_due_date_with_the_interval_and_audits_the_change(cast, client_for, world):
    credential = world.credential
    response = client_for(cast.admin).post(
        _url("edit", pk=credential.pk),
        {
            "name": credential.name,
            "provider": "openai",
            "environment": "staging",
            "reference": credential.reference,
            "rotation_interval_days": "30",
        },
    )
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.next_due_on == credential.created_at.date() + timedelta(days=30)
    changed = AuditEvent.objects.get(action="credential.updated").metadata["changed"]
    assert set(changed) == {"environment", "owner", "rotation_interval_days", "next_due_on"}


# --- list -----------------------------------------------------------------------------------------


def test_list_filters_and_paginates_with_a_flat_query_count(cast, client_for, world):
    admin = client_for(cast.admin)
    for i in range(3):
        make_credential(cast.acme, name=f"old {i}", rotated_days_ago=120)
    admin.get(_url("list"))  # warm: the session and the permission memo
    with CaptureQueriesContext(connection) as few:
        assert admin.get(_url("list")).status_code == 200
    for i in range(30):
        make_credential(cast.acme, name=f"key {i:02}", owner=world.credential.owner)
    with CaptureQueriesContext(connection) as many:
        response = admin.get(_url("list"))
    assert len(many) == len(few)
    body = response.content.decode()
    assert "Page 1 of 2" in body
    assert "Globex key" not in body
    overdue = admin.get(_url("list"), {"state": "overdue"}).content.decode()
    assert "old 0" in overdue
    assert "key 01" not in overdue
    assert admin.get(_url("list"), {"state": "nonsense"}).status_code == 400
    assert admin.get(_url("list"), {"page": "999"}).status_code == 200
    fragment = admin.get(_url("list"), {"provider": "openai"}, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert b"<html" not in fragment.content
    assert b'id="credential-table-inner"' in fragment.content


# --- check, rotate, record against a real OpenBao ----------------------------------------------------


@pytest.fixture
def in_vault(vault):
    kv = vault.client().secrets.kv.v2
    kv.delete_metadata_and_all_versions(path="bastion/acme/openai", mount_point="secret")
    kv.create_or_update_secret(path="bastion/acme/openai", secret={"api_key": SECRET}, mount_point="secret")
    return vault


def test_check_shows_the_version_never_the_value(cast, client_for, world, in_vault, caplog):
    caplog.set_level(logging.DEBUG)
    admin = client_for(cast.admin)
    response = admin.post(_url("check", pk=world.credential.pk), follow=True)
    body = response.content.decode()
    assert response.status_code == 200
    assert "Resolved (version 1)" in body
    assert SECRET not in body
    world.credential.refresh_from_db()
    assert (world.credential.last_check_status, world.credential.last_check_version) == ("ok", 1)
    event = AuditEvent.objects.get(action="credential.checked")
    assert SECRET not in str(event.metadata)
    assert SECRET not in caplog.text


def test_check_faults_show_a_clear_status_not_a_500(cast, client_for, world, sealed_openbao, caplog):
    caplog.set_level(logging.DEBUG)
    response = client_for(cast.admin).post(_url("check", pk=world.credential.pk), follow=True)
    assert response.status_code == 200
    assert "The vault is sealed" in response.content.decode()
    world.credential.refresh_from_db()
    assert world.credential.last_check_status == "sealed"
    assert AuditEvent.objects.get(action="credential.checked").result == "failure"


def test_rotate_needs_the_tenant_setting(cast, client_for, world, in_vault):
    admin = client_for(cast.admin)
    page = admin.get(_url("detail", pk=world.credential.pk)).content.decode()
    assert "does not let Bastion write to the vault" in page
    response = admin.post(_url("rotate", pk=world.credential.pk), {"new_value": PASTED}, follow=True)
    assert "does not let Bastion write" in response.content.decode()
    assert not CredentialRotation.objects.exists()
    version = in_vault.client().secrets.kv.v2.read_secret_metadata(path="bastion/acme/openai", mount_point="secret")
    assert version["data"]["current_version"] == 1


def test_rotate_writes_a_new_version_and_never_echoes_the_value(cast, client_for, world, in_vault, caplog):
    caplog.set_level(logging.DEBUG)
    admin = client_for(cast.admin)
    admin.post(_url("settings"), {"allow_vault_writes": "on"})
    response = admin.post(_url("rotate", pk=world.credential.pk), {"new_value": PASTED}, follow=True)
    body = response.content.decode()
    assert "New version 2 written" in body
    assert PASTED not in body
    assert 'type="password"' in body
    stored = in_vault.client().secrets.kv.v2.read_secret_version(
        path="bastion/acme/openai", mount_point="secret", raise_on_deleted_version=True
    )
    assert stored["data"]["data"]["api_key"] == PASTED
    world.credential.refresh_from_db()
    assert world.credential.next_due_on == timezone.now().date() + timedelta(days=90)
    rotation = CredentialRotation.objects.get()
    assert (rotation.method, rotation.new_version, rotation.rotated_by) == ("vault_write", 2, cast.admin)
    events = AuditEvent.objects.filter(action__startswith="credential.")
    assert {"credential.settings_changed", "credential.rotated"} <= set(events.values_list("action", flat=True))
    for event in events:
        assert PASTED not in str(event.metadata)
        assert SECRET not in str(event.metadata)
    assert PASTED not in caplog.text
    assert SECRET not in caplog.text


def test_rotate_generates_a_value_when_none_is_given(cast, client_for, world, in_vault):
    services.credential_settings_set(tenant=cast.acme, allow_vault_writes=True)
    client_for(cast.admin).post(_url("rotate", pk=world.credential.pk), {"new_value": ""})
    stored = in_vault.client().secrets.kv.v2.read_secret_version(
        path="bastion/acme/openai", mount_point="secret", raise_on_deleted_version=True
    )
    generated = stored["data"]["data"]["api_key"]
    assert generated != SECRET
    assert len(generated) >= 43


def test_rotate_with_a_token_without_permission_is_a_clear_failure(cast, client_for, world, in_vault, settings):
    services.credential_settings_set(tenant=cast.acme, allow_vault_writes=True)
    client = in_vault.client()
    client.sys.create_or_update_acl_policy(
        name="read-only", policy='path "secret/data/bastion/acme/*" { capabilities = ["read"] }'
    )
    settings.VAULT_TOKEN = client.auth.token.create(policies=["read-only"], ttl="10m")["auth"]["client_token"]
    response = client_for(cast.admin).post(_url("rotate", pk=world.credential.pk), {"new_value": PASTED}, follow=True)
    assert response.status_code == 200
    assert "may not write that path" in response.content.decode()
    assert not CredentialRotation.objects.exists()
    assert AuditEvent.objects.get(action="credential.rotated").result == "failure"


def test_rotate_refuses_a_short_pasted_value(cast, client_for, world, in_vault):
    services.credential_settings_set(tenant=cast.acme, allow_vault_writes=True)
    response = client_for(cast.admin).post(_url("rotate", pk=world.credential.pk), {"new_value": "short"}, follow=True)
    assert "16 to 4096 characters" in response.content.decode()
    assert not CredentialRotation.objects.exists()


def test_env_references_cannot_be_rotated_by_bastion(cast, client_for):
    services.credential_settings_set(tenant=cast.acme, allow_vault_writes=True)
    credential = make_credential(cast.acme, name="env one", reference="env://BASTION_CRED_ACME__X")
    response = client_for(cast.admin).post(_url("rotate", pk=credential.pk), {"new_value": PASTED}, follow=True)
    assert "read-only" in response.content.decode()
    assert not CredentialRotation.objects.exists()


def test_record_rotation_moves_the_schedule_and_says_who(cast, client_for, world):
    day = timezone.now().date() - timedelta(days=3)
    response = client_for(cast.owner).post(
        _url("record", pk=world.credential.pk), {"rotated_on": day.isoformat(), "note": "CHG-42"}, follow=True
    )
    assert "Rotation recorded" in response.content.decode()
    world.credential.refresh_from_db()
    assert world.credential.next_due_on == day + timedelta(days=90)
    rotation = CredentialRotation.objects.get()
    assert (rotation.method, rotation.rotated_by, rotation.note) == ("recorded", cast.owner, "CHG-42")
    event = AuditEvent.objects.get(action="credential.rotation_recorded")
    assert event.actor_id == str(cast.owner.pk)


def test_record_rotation_refuses_the_future_and_garbage(cast, client_for, world):
    admin = client_for(cast.admin)
    for bad in ("2999-01-01", "yesterday", ""):
        response = admin.post(_url("record", pk=world.credential.pk), {"rotated_on": bad}, follow=True)
        assert "Not recorded" in response.content.decode()
    assert not CredentialRotation.objects.exists()


# --- the due page and the dashboard card ---------------------------------------------------------


def test_due_page_lists_overdue_and_soon_only(cast, client_for, world):
    make_credential(cast.acme, name="Overdue one", rotated_days_ago=100)
    make_credential(cast.acme, name="Soon one", rotated_days_ago=85)
    body = client_for(cast.admin).get(_url("due")).content.decode()
    assert "Overdue one" in body
    assert "Overdue 10 d" in body
    assert "Soon one" in body
    assert "In 5 d" in body
    assert "OpenAI prod" not in body  # due in 90 days
    assert "Globex" not in body


def test_dashboard_card_asks_for_attention_when_something_is_overdue(cast, rf, world, django_assert_num_queries):
    from apps.keys.dashboard import credentials_card

    request = rf.get("/")
    request.tenant = cast.acme
    request.can = lambda *args, **kwargs: True
    with django_assert_num_queries(2):  # the credentials due, the tenant's SSO connections
        card = credentials_card(request)
    assert card is not None
    assert not card.attention
    make_credential(cast.acme, name="Overdue one", rotated_days_ago=100)
    card = credentials_card(request)
    assert card.attention
    assert card.context["overdue"] == 1
    request.can = lambda *args, **kwargs: False
    assert credentials_card(request) is None
