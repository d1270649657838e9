"""Secret stores against a real OpenBao dev server: check, write, the tenant boundary and every fault."""

from __future__ import annotations

import contextlib
import logging

import hvac
import pytest

from apps.keys.credentials import secretstores
from apps.keys.credentials.secretstores import BadReferenceError
from apps.tenants.models import Tenant

SECRET = "sk-THE-SECRET-VALUE-4f1c9a"
ACME = Tenant(slug="acme", name="Acme")
A_B = Tenant(slug="a--b", name="A B")
A = Tenant(slug="a", name="A")


@pytest.fixture
def seeded(vault):
    # The server lives for the session: start every test from version 1.
    vault.client().secrets.kv.v2.delete_metadata_and_all_versions(path="bastion/acme/openai", mount_point="secret")
    vault.client().secrets.kv.v2.create_or_update_secret(
        path="bastion/acme/openai", secret={"api_key": SECRET, "org": "org-1"}, mount_point="secret"
    )
    return vault


def _assert_no_secret(caplog, *values: object) -> None:
    text = caplog.text + " ".join(repr(v) for v in values)
    assert SECRET not in text


# --- the reference syntax and the tenant boundary ---------------------------------------------


@pytest.mark.parametrize(
    "reference",
    [
        "vault://secret/bastion/acme/openai#api_key",
        "vault://secret/bastion/acme/prod/anthropic#key",
        "env://BASTION_CRED_ACME__OPENAI_KEY",
    ],
)
def test_references_inside_the_tenant_space_are_accepted(reference: str) -> None:
    assert secretstores.validate(f"  {reference} ", tenant=ACME) == reference


@pytest.mark.parametrize(
    "reference",
    [
        "vault://secret/bastion/globex/openai#api_key",  # another tenant's path
        "vault://secret/bastion/acme/../globex/openai#api_key",  # climbing out
        "vault://secret/bastion/acme/./openai#api_key",
        "vault://secret/bastion/acmecorp/openai#api_key",  # a longer slug with the same start
        "vault://secret/bastion/acme#api_key",  # the prefix itself is not a secret of the tenant
        "vault://secret/bastion/acme//openai#api_key",  # empty segment
        "vault://secret/bastion/acme/openai",  # no field
        "vault://secret/bastion/acme/openai#",
        "vault://secret/bastion/acme/op enai#api_key",
        "vault://other/bastion/acme/openai#api_key",  # another mount
        "vault://secret/bastion/acme/openai#api key",
        "env://BASTION_CRED_GLOBEX__KEY",
        "env://OPENAI_API_KEY",
        "env://SECRET_KEY",
        "env://BASTION_CRED_ACME__",
        "env://bastion_cred_acme__key",
        "ftp://secret/bastion/acme/x#y",
        "secret/bastion/acme/openai#api_key",
        "",
        "vault://" + "a/" * 300 + "#k",
    ],
)
def test_references_outside_the_tenant_space_are_refused(reference: str) -> None:
    with pytest.raises(BadReferenceError):
        secretstores.validate(reference, tenant=ACME)
    assert secretstores.check(reference, tenant=ACME).status == "invalid"


def test_env_prefixes_do_not_overlap_between_similar_slugs() -> None:
    # Tenant "a--b" owns BASTION_CRED_A__B__*; tenant "a" (prefix BASTION_CRED_A__) must not reach them.
    assert secretstores.validate("env://BASTION_CRED_A__B__KEY", tenant=A_B)
    with pytest.raises(BadReferenceError):
        secretstores.validate("env://BASTION_CRED_A__B__KEY", tenant=A)
    assert secretstores.validate("env://BASTION_CRED_A__B_KEY", tenant=A)


def test_the_vault_prefix_is_a_setting(settings) -> None:
    settings.VAULT_TENANT_PATH_PREFIX = "kv/tenants/{tenant}/ai/"
    assert secretstores.validate("vault://kv/tenants/acme/ai/openai#k", tenant=ACME)
    with pytest.raises(BadReferenceError):
        secretstores.validate("vault://secret/bastion/acme/openai#k", tenant=ACME)


# --- check ---------------------------------------------------------------------------------------


def test_check_reports_version_and_created_time_never_the_value(seeded, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    result = secretstores.check("vault://secret/bastion/acme/openai#api_key", tenant=ACME)
    assert result.status == "ok"
    assert result.version == 1
    assert result.created_time is not None
    _assert_no_secret(caplog, result)


def test_a_missing_field_or_path_is_not_found(seeded, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    field = secretstores.check("vault://secret/bastion/acme/openai#nope", tenant=ACME)
    assert field.status == "not_found"
    assert "nope" in field.detail
    assert field.version == 1
    path = secretstores.check("vault://secret/bastion/acme/missing#api_key", tenant=ACME)
    assert path.status == "not_found"
    _assert_no_secret(caplog, field, path)


def test_a_token_without_permission_is_denied(seeded, settings, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = seeded.client()
    client.sys.create_or_update_acl_policy(
        name="bastion-other-only", policy='path "secret/data/bastion/acme/other" { capabilities = ["read"] }'
    )
    settings.VAULT_TOKEN = client.auth.token.create(policies=["bastion-other-only"], ttl="10m")["auth"]["client_token"]
    result = secretstores.check("vault://secret/bastion/acme/openai#api_key", tenant=ACME)
    assert result.status == "denied"
    written = secretstores.write("vault://secret/bastion/acme/openai#api_key", tenant=ACME, value="x" * 20)
    assert written.status == "denied"
    assert "write" in written.detail
    _assert_no_secret(caplog, result, written)


def test_a_sealed_vault_says_so(sealed_openbao, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    result = secretstores.check("vault://secret/bastion/acme/openai#api_key", tenant=ACME)
    assert result.status == "sealed"
    assert "sealed" in result.detail


def test_an_unreachable_vault_says_so(settings) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings.VAULT_ADDR, settings.VAULT_TOKEN, settings.VAULT_TIMEOUT = f"http://127.0.0.1:{port}", "t", 2
    result = secretstores.check("vault://secret/bastion/acme/openai#api_key", tenant=ACME)
    assert result.status == "unreachable"


def test_no_vault_configured(settings) -> None:
    settings.VAULT_ADDR = ""
    assert secretstores.check("vault://secret/bastion/acme/openai#k", tenant=ACME).status == "not_configured"


def test_env_references_resolve_without_a_vault(monkeypatch) -> None:
    monkeypatch.setenv("BASTION_CRED_ACME__OPENAI", SECRET)
    result = secretstores.check("env://BASTION_CRED_ACME__OPENAI", tenant=ACME)
    assert result.status == "ok"
    assert SECRET not in repr(result)
    assert secretstores.check("env://BASTION_CRED_ACME__UNSET", tenant=ACME).status == "not_found"
    assert secretstores.write("env://BASTION_CRED_ACME__OPENAI", tenant=ACME, value="x" * 20).status == "error"


def test_approle_login(seeded, settings) -> None:
    client = seeded.client()
    if "approle/" not in client.sys.list_auth_methods()["data"]:
        client.sys.enable_auth_method("approle")
    client.sys.create_or_update_acl_policy(
        name="bastion-acme", policy='path "secret/data/bastion/acme/*" { capabilities = ["read", "create", "update"] }'
    )
    client.auth.approle.create_or_update_approle("bastion", token_policies=["bastion-acme"], token_ttl="10m")
    settings.VAULT_TOKEN = ""
    settings.VAULT_ROLE_ID = client.auth.approle.read_role_id("bastion")["data"]["role_id"]
    settings.VAULT_SECRET_ID = client.auth.approle.generate_secret_id("bastion")["data"]["secret_id"]
    assert secretstores.check("vault://secret/bastion/acme/openai#api_key", tenant=ACME).status == "ok"


# --- write ---------------------------------------------------------------------------------------


def test_write_adds_a_version_and_keeps_the_other_fields(seeded, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    new = "new-value-" + "z" * 20
    result = secretstores.write("vault://secret/bastion/acme/openai#api_key", tenant=ACME, value=new)
    assert (result.status, result.version) == ("ok", 2)
    data = seeded.client().secrets.kv.v2.read_secret_version(
        path="bastion/acme/openai", mount_point="secret", raise_on_deleted_version=True
    )
    assert data["data"]["data"] == {"api_key": new, "org": "org-1"}
    assert new not in caplog.text
    _assert_no_secret(caplog, result)


def test_write_creates_a_secret_that_does_not_exist_yet(vault) -> None:
    vault.client().secrets.kv.v2.delete_metadata_and_all_versions(path="bastion/acme/fresh-one", mount_point="secret")
    result = secretstores.write("vault://secret/bastion/acme/fresh-one#token", tenant=ACME, value="v" * 20)
    assert (result.status, result.version) == ("ok", 1)


def test_a_namespace_per_tenant_keeps_tenants_apart_inside_the_vault(vault, settings) -> None:
    root = vault.client()
    with contextlib.suppress(hvac.exceptions.InvalidRequest):  # the session's server may have it already
        root.sys.create_namespace("acme")
    acme_ns = vault.client()
    acme_ns.adapter.namespace = "acme"
    if "secret/" not in acme_ns.sys.list_mounted_secrets_engines()["data"]:
        acme_ns.sys.enable_secrets_engine("kv", path="secret", options={"version": "2"})
    acme_ns.secrets.kv.v2.create_or_update_secret(path="bastion/acme/ns-only", secret={"k": "v"}, mount_point="secret")
    reference = "vault://secret/bastion/acme/ns-only#k"
    assert secretstores.check(reference, tenant=ACME).status == "not_found"  # not in the root namespace
    settings.VAULT_TENANT_NAMESPACE = "{tenant}"
    assert secretstores.vault_namespace(ACME) == "acme"
    assert secretstores.check(reference, tenant=ACME).status == "ok"
    written = secretstores.write(reference, tenant=ACME, value="w" * 20)
    assert written.ok
    assert (
        acme_ns.secrets.kv.v2.read_secret_metadata(path="bastion/acme/ns-only", mount_point="secret")["data"][
            "current_version"
        ]
        == written.version
    )
