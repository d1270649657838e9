"""Review findings on provider credentials, against the real OpenBao dev server: concurrent writers, a deleted
latest version, and dates that cannot be a last rotation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from hvac.api.secrets_engines.kv_v2 import KvV2

from apps.keys.credentials import secretstores, services
from apps.keys.credentials.forms import CredentialForm
from apps.keys.credentials.services import CredentialError, CredentialInput
from apps.keys.models import Credential, CredentialRotation, CredentialSettings
from apps.tenants.models import Tenant

PATH = "bastion/acme/review"
REFERENCE = f"vault://secret/{PATH}#api_key"
ACME = Tenant(slug="acme", name="Acme")


@pytest.fixture
def fresh(vault):
    root = vault.client().secrets.kv.v2
    root.delete_metadata_and_all_versions(path=PATH, mount_point="secret")
    root.create_or_update_secret(path=PATH, secret={"api_key": "first-value-0000", "org": "o-1"}, mount_point="secret")
    return vault


def _data(vault) -> tuple[int, dict]:
    found = vault.client().secrets.kv.v2.read_secret_version(
        path=PATH, mount_point="secret", raise_on_deleted_version=True
    )["data"]
    return found["metadata"]["version"], found["data"]


def test_a_concurrent_writer_wins_and_bastion_reports_a_conflict(fresh, monkeypatch) -> None:
    original = KvV2.create_or_update_secret
    other = fresh.client()

    def someone_else_first(self, path, secret, cas=None, mount_point="secret"):
        # Between Bastion's read and its check-and-set write, someone rotates in the vault.
        original(
            other.secrets.kv.v2, path=PATH, secret={"api_key": "theirs-0000000000", "org": "o-1"}, mount_point="secret"
        )
        return original(self, path=path, secret=secret, cas=cas, mount_point=mount_point)

    monkeypatch.setattr(KvV2, "create_or_update_secret", someone_else_first)
    result = secretstores.write(REFERENCE, tenant=ACME, value="ours-000000000000")
    assert result.status == "error"
    assert "changed meanwhile" in result.detail
    assert _data(fresh) == (2, {"api_key": "theirs-0000000000", "org": "o-1"})  # theirs kept, not overwritten


def test_a_rotation_conflict_is_audited_and_moves_no_date(fresh, cast, monkeypatch) -> None:
    CredentialSettings.objects.create(tenant=cast.acme, allow_vault_writes=True)
    credential = services.credential_create(
        tenant=cast.acme,
        data=CredentialInput("Review", "openai", "prod", "", None, REFERENCE),
        last_rotated_at=timezone.now() - timedelta(days=80),
    )
    due = credential.next_due_on
    original = KvV2.create_or_update_secret

    def racing(self, path, secret, cas=None, mount_point="secret"):
        original(fresh.client().secrets.kv.v2, path=PATH, secret={"x": "y"}, mount_point="secret")
        return original(self, path=path, secret=secret, cas=cas, mount_point=mount_point)

    monkeypatch.setattr(KvV2, "create_or_update_secret", racing)
    result = services.credential_rotate(credential=credential)
    assert not result.ok
    credential.refresh_from_db()
    assert credential.next_due_on == due
    assert not CredentialRotation.objects.filter(credential=credential).exists()


def test_rotating_a_secret_whose_latest_version_was_deleted_writes_a_new_version(fresh) -> None:
    fresh.client().secrets.kv.v2.delete_latest_version_of_secret(path=PATH, mount_point="secret")
    assert secretstores.check(REFERENCE, tenant=ACME).status == "not_found"
    result = secretstores.write(REFERENCE, tenant=ACME, value="after-delete-00000")
    assert (result.status, result.version) == ("ok", 2)
    assert _data(fresh) == (2, {"api_key": "after-delete-00000"})
    assert secretstores.check(REFERENCE, tenant=ACME).status == "ok"


@pytest.mark.django_db
@pytest.mark.parametrize("day", ["1800-01-01", "0001-01-01"])
def test_a_last_rotation_centuries_ago_is_a_form_error(cast, day) -> None:
    form = CredentialForm(
        {
            "name": "Old",
            "provider": "openai",
            "environment": "prod",
            "reference": "env://BASTION_CRED_ACME__OLD",
            "rotation_interval_days": "90",
            "last_rotated_on": day,
        },
        tenant=cast.acme,
    )
    assert not form.is_valid()
    assert "last_rotated_on" in form.errors
    with pytest.raises(CredentialError):
        services.credential_create(
            tenant=cast.acme,
            data=CredentialInput("Old", "openai", "prod", "", None, "env://BASTION_CRED_ACME__OLD"),
            last_rotated_at=datetime(1800, 1, 1, 12, tzinfo=UTC),
        )
    assert not Credential.objects.for_tenant(cast.acme).filter(name="Old").exists()


@pytest.mark.parametrize(
    ("address", "status", "words"),
    [
        ("https://{host}", "unreachable", "TLS certificate"),  # TLS spoken to a plain-http vault: no handshake
        ("vault.internal:8200", "not_configured", "not a valid URL"),
        ("http://", "not_configured", "not a valid URL"),
    ],
)
def test_a_misconfigured_vault_address_says_what_is_wrong(vault, settings, caplog, address, status, words) -> None:
    settings.VAULT_ADDR = address.format(host=vault.addr.removeprefix("http://"))
    for result in (
        secretstores.check(REFERENCE, tenant=ACME),
        secretstores.write(REFERENCE, tenant=ACME, value="never-written-0000"),
    ):
        assert result.status == status
        assert words in result.detail
    assert "never-written-0000" not in caplog.text


@pytest.mark.django_db
def test_a_credential_removed_during_its_rotation_is_a_message_not_a_500(fresh, cast, client_for, monkeypatch) -> None:
    CredentialSettings.objects.create(tenant=cast.acme, allow_vault_writes=True)
    credential = services.credential_create(
        tenant=cast.acme, data=CredentialInput("Review", "openai", "prod", "", None, REFERENCE)
    )
    real_write = secretstores.write

    def write_then_removed(reference, *, tenant, value):
        result = real_write(reference, tenant=tenant, value=value)
        Credential.objects.filter(pk=credential.pk).delete()  # another admin removed it meanwhile
        return result

    monkeypatch.setattr(secretstores, "write", write_then_removed)
    http = client_for(cast.owner)
    response = http.post(reverse("credentials:rotate", kwargs={"tenant_slug": "acme", "pk": credential.pk}))
    assert response.status_code == 302
    assert response["Location"] == reverse("credentials:list", kwargs={"tenant_slug": "acme"})
    page = http.get(response["Location"]).content.decode()
    assert "removed from Bastion meanwhile" in page
    assert "version 2" in page
    assert not CredentialRotation.objects.exists()
