"""Provider credentials in a real browser against a real OpenBao: list, add (with an error), check, rotate, due.

Run with SCREENSHOT_DIR=… to keep the pictures (credentials-*.png).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from apps.access.services import builtin_roles_seed
from apps.keys.credentials import services
from apps.keys.credentials.services import CredentialInput
from apps.tenants.models import Membership
from tests.e2e.helpers import shot, signed_in_context
from tests.factories import MembershipFactory, TenantFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SECRET = "sk-BROWSER-SECRET-77aa"


def _credential(tenant, owner, name, reference, days_ago, provider="openai", environment="prod"):
    return services.credential_create(
        tenant=tenant,
        data=CredentialInput(
            name=name,
            provider=provider,
            environment=environment,
            purpose="Used by the support assistant",
            owner=owner,
            reference=reference,
        ),
        last_rotated_at=timezone.now() - timedelta(days=days_ago),
    )


def test_credentials_walk(live_server, browser, screenshot_dir, vault) -> None:
    kv = vault.client().secrets.kv.v2
    kv.delete_metadata_and_all_versions(path="bastion/acme/openai", mount_point="secret")
    kv.create_or_update_secret(path="bastion/acme/openai", secret={"api_key": SECRET}, mount_point="secret")
    acme = TenantFactory(slug="acme", name="Acme Corp")
    builtin_roles_seed(tenant=acme)
    admin_user = UserFactory(email="adam@acme.example", full_name="Adam Admin")
    admin = MembershipFactory(tenant=acme, user=admin_user, role=Membership.Role.ADMIN)
    dev = MembershipFactory(tenant=acme, user=UserFactory(email="dana@acme.example"), role="developer")
    openai = _credential(acme, dev, "OpenAI – support assistant", "vault://secret/bastion/acme/openai#api_key", 97)
    _credential(acme, dev, "Anthropic – research", "vault://secret/bastion/acme/anthropic#api_key", 80, "anthropic")
    _credential(acme, admin, "Pinecone – search", "env://BASTION_CRED_ACME__PINECONE", 20, "pinecone", "staging")
    _credential(acme, dev, "GitHub – review tool", "env://BASTION_CRED_ACME__GITHUB", 100, "github", "dev")
    services.credential_settings_set(tenant=acme, allow_vault_writes=True)

    errors: list[str] = []
    page = signed_in_context(browser, live_server, admin_user).new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    base = f"{live_server.url}/t/acme/keys/credentials"

    page.goto(f"{base}/")
    expect(page.get_by_role("link", name="OpenAI – support assistant")).to_be_visible()
    expect(page.get_by_text("Overdue 7 d")).to_be_visible()
    shot(page, screenshot_dir, "credentials-1-list")

    page.get_by_role("link", name="Add credential").click()
    page.get_by_label("Name").fill("Mistral – summaries")
    page.get_by_label("Provider").select_option("mistral")
    page.get_by_label("Reference").fill("vault://secret/bastion/globex/mistral#api_key")
    page.get_by_role("button", name="Add credential").click()
    expect(page.get_by_text("may reference vault secrets under secret/bastion/acme/ only")).to_be_visible()
    shot(page, screenshot_dir, "credentials-2-form-error")
    page.get_by_label("Reference").fill("vault://secret/bastion/acme/mistral#api_key")
    page.get_by_role("button", name="Add credential").click()
    expect(page.get_by_role("heading", name="Mistral – summaries")).to_be_visible()

    page.goto(f"{base}/{openai.pk}/")
    page.get_by_role("button", name="Check now").click()
    expect(page.get_by_text("Resolved (version 1).")).to_be_visible()
    page.get_by_label("New secret value").fill("sk-new-key-from-the-provider-console-123")
    page.get_by_role("button", name="Write a new version to the vault").click()
    expect(page.get_by_text("New version 2 written to the vault")).to_be_visible()
    assert SECRET not in page.content()
    assert "sk-new-key-from-the-provider-console-123" not in page.content()
    shot(page, screenshot_dir, "credentials-3-detail")

    page.goto(f"{base}/due/")
    expect(page.get_by_role("link", name="Anthropic – research")).to_be_visible()
    expect(page.get_by_role("link", name="OpenAI – support assistant")).to_have_count(0)  # rotated just now
    expect(page.get_by_text("Overdue 10 d")).to_be_visible()
    shot(page, screenshot_dir, "credentials-4-due")

    page.goto(f"{live_server.url}/t/acme/")
    card = page.locator("section", has=page.get_by_role("heading", name="Credentials to rotate"))
    expect(card.get_by_text("1 credential overdue for rotation.")).to_be_visible()
    shot(page, screenshot_dir, "credentials-5-dashboard")
    # The refused form answers 400 on purpose; nothing else may fail (CSP refusals show up here too).
    assert [e for e in errors if "status of 400" not in e] == []
    assert mail.outbox == []
