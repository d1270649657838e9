"""Demo provider credentials for Acme (#13): four references, one overdue, one due within two weeks.

Created through the credential services, so the audit log shows them as an
admin would have made them. ``env://`` references need no vault; when a vault
is configured (``VAULT_ADDR``), the ``vault://`` ones are checked against it
(their status then shows on the pages). Idempotent: an existing name is skipped.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from apps.keys.credentials import selectors as credential_selectors
from apps.keys.credentials import services as credential_services
from apps.keys.credentials.services import CredentialInput
from apps.tenants import selectors as tenant_selectors

# (name, provider, environment, purpose, owner e-mail, reference, interval days, last rotated days ago)
DEMO_CREDENTIALS = (
    (
        "OpenAI – support assistant",
        "openai",
        "prod",
        "The customer-support chatbot's completions and embeddings.",
        "dev@acme.example",
        "env://BASTION_CRED_ACME__OPENAI_SUPPORT",
        90,
        97,  # overdue by a week: the escalation to the admins is due
    ),
    (
        "Anthropic – research notebooks",
        "anthropic",
        "staging",
        "Analysts' notebooks on the staging cluster.",
        "dev@acme.example",
        "vault://secret/bastion/acme/anthropic#api_key",
        90,
        80,  # due in 10 days
    ),
    (
        "Pinecone – document search",
        "pinecone",
        "prod",
        "Vector index behind the HR policy search tool.",
        "admin@acme.example",
        "vault://secret/bastion/acme/pinecone#api_key",
        90,
        20,
    ),
    (
        "GitHub – code review tool",
        "github",
        "dev",
        "Token the code-review tool uses to read pull requests.",
        "",
        "env://BASTION_CRED_ACME__GITHUB_REVIEW",
        180,
        45,
    ),
)


def seed_credentials() -> list[str]:
    """Create Acme's demo credentials that do not exist yet; returns a line per created one."""
    acme = tenant_selectors.tenant_get(slug="acme")
    if acme is None:
        return []
    members = {m.user.email: m for m in tenant_selectors.member_list(tenant=acme, status="active")}
    actor = members.get("admin@acme.example")
    existing = set(credential_selectors.credential_list(tenant=acme).values_list("name", flat=True))
    created: list[str] = []
    now = timezone.now()
    for name, provider, environment, purpose, owner, reference, interval, days_ago in DEMO_CREDENTIALS:
        if name in existing:
            continue
        credential = credential_services.credential_create(
            tenant=acme,
            data=CredentialInput(
                name=name,
                provider=provider,
                environment=environment,
                purpose=purpose,
                owner=members.get(owner),
                reference=reference,
                rotation_interval_days=interval,
            ),
            last_rotated_at=now - timedelta(days=days_ago),
            actor=actor,
        )
        if settings.VAULT_ADDR and reference.startswith("vault://"):
            credential_services.credential_check(credential=credential, actor=actor)
        created.append(f"credential {name} in acme (due {credential.next_due_on:%Y-%m-%d})")
    return created
