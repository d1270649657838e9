"""``manage.py seed_demo``: the demo installation ``make run`` starts with. Idempotent.

Creates platform staff, tenant Acme Corp (owner, admin, member, viewer and one
pending invitation) and tenant Globex (its own owner) through the tenant
services, so the audit log fills the way it would in real use. Running it
again creates nothing and says so; ``--reset-passwords`` puts the demo
passwords back on the demo accounts.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from allauth.account.models import EmailAddress
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from apps.access import members as member_services
from apps.access import services as access_services
from apps.accounts import services as account_services
from apps.accounts.models import User
from apps.catalog import services as catalog_services
from apps.core import context
from apps.platform import services as platform_services
from apps.platform.management import (
    demo,
    demo_alerts,
    demo_billsubs,
    demo_breakglass,
    demo_credentials,
    demo_metering,
    demo_runbook,
)
from apps.tenants import selectors, services
from apps.tenants.models import Membership

# Sign-in events for the demo come from a documentation address (RFC 5737).
DEMO_IP = "203.0.113.10"
DEMO_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) bastion-seed-demo"


class Command(BaseCommand):
    help = "Create the demo tenants, people and audit events (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Set the demo passwords again on the demo accounts (and mark their e-mail verified).",
        )

    def handle(self, *args: Any, reset_passwords: bool = False, **options: Any) -> None:
        self.created: list[str] = []
        with context.bind(ip=DEMO_IP, user_agent=DEMO_USER_AGENT), transaction.atomic():
            staff = self._user(demo.STAFF, is_staff=True, reset_password=reset_passwords)
            for spec in demo.TENANTS:
                self._tenant(spec, staff=staff, reset_passwords=reset_passwords)
            self.created += demo_credentials.seed_credentials()  # provider credentials, one overdue (#13)
            self.created += demo_breakglass.seed_breakglass()  # "Incident responder" and a past elevation (#11)
            self.created += demo_alerts.seed_alerts()  # alert rules, one open alert, fraud screening (#13, #12)
            self.created += demo_runbook.seed_runbook()  # this quarter's runbook for acme, open (#13)
            self.created += demo_billsubs.seed_billing()  # plans; Acme on Team with paid invoices (#12)
            self.created += demo_metering.seed_metering()  # usage over two weeks and budgets for acme (#12)

        if self.created:
            self.stdout.write(self.style.SUCCESS("Demo data created:"))
            for line in self.created:
                self.stdout.write(f"  + {line}")
        else:
            self.stdout.write("Demo data already present; nothing changed.")
        self.stdout.write("Demo sign-in (e-mail / password):")
        for line in demo.sign_in_lines():
            self.stdout.write(line)

    # --- people ----------------------------------------------------------------------------

    def _user(self, spec: demo.DemoUser, *, is_staff: bool = False, reset_password: bool = False) -> User:
        """The demo user, created with a verified e-mail address if missing."""
        user = User.objects.filter(email__iexact=spec.email).first()
        if user is None:
            user = User.objects.create_user(
                email=spec.email, password=spec.password, full_name=spec.full_name, is_staff=is_staff
            )
            self.created.append(f"user {spec.email}" + (" (platform staff)" if is_staff else ""))
            if spec.password:
                self._verify_email(user)
        elif reset_password and spec.password:
            user.set_password(spec.password)
            user.is_active = True
            user.save(update_fields=["password", "is_active"])
            self._verify_email(user)
            self.created.append(f"password reset for {spec.email}")
        return user

    @staticmethod
    def _verify_email(user: User) -> None:
        # allauth refuses sign-in until the primary address is verified.
        EmailAddress.objects.update_or_create(user=user, email=user.email, defaults={"verified": True, "primary": True})

    # --- catalog ---------------------------------------------------------------------------

    def _catalog(self, tenant: Any, owner: User) -> None:
        """Datasets, models, tools, a custom role and grants, so every console page has content."""
        catalog_services.dataset_create(
            tenant=tenant,
            name="support-tickets",
            classification="confidential",
            contains_personal_data=True,
            description="Customer support tickets since 2024, with names and e-mail addresses.",
            tags=["support", "pii"],
            owner=owner,
            actor=owner,
        )
        catalog_services.dataset_create(
            tenant=tenant, name="product-docs", classification="internal", tags=["docs"], actor=owner
        )
        payroll = catalog_services.dataset_create(
            tenant=tenant, name="payroll-2026", classification="restricted", contains_personal_data=True, actor=owner
        )
        catalog_services.model_create(
            tenant=tenant,
            provider="openai",
            model_name="gpt-4.1",
            price_per_1k_input=Decimal("0.002"),
            price_per_1k_output=Decimal("0.008"),
            enabled=True,
            actor=owner,
        )
        catalog_services.model_create(
            tenant=tenant,
            provider="anthropic",
            model_name="claude-sonnet-4",
            price_per_1k_input=Decimal("0.003"),
            price_per_1k_output=Decimal("0.015"),
            enabled=True,
            actor=owner,
        )
        catalog_services.tool_create(
            tenant=tenant,
            name="web-search",
            description="Searches the public web through the vendor's API.",
            args_schema={
                "type": "object",
                "properties": {"query": {"type": "string", "maxLength": 500}, "url": {"type": "string"}},
                "required": ["query"],
                "additionalProperties": False,
            },
            egress_allowlist=["api.search.example", "*.docs.example"],
            output_cap_bytes=256 * 1024,
            risk_level="medium",
            allowlisted=True,
            actor=owner,
        )
        catalog_services.tool_create(
            tenant=tenant,
            name="sql-runner",
            description="Runs read-only SQL against the analytics warehouse.",
            args_schema={"type": "object", "properties": {"sql": {"type": "string"}}, "required": ["sql"]},
            risk_level="high",
            allowlisted=False,
            actor=owner,
        )
        owner_membership = selectors.member_list(tenant=tenant).get(user=owner)
        steward = access_services.role_create(
            tenant=tenant,
            key="data-steward",
            name="Data steward",
            description="Reads restricted HR data.",
            permissions=["tenant.view", "prompt.create", "model.use"],
            actor=owner_membership,
        )
        access_services.binding_create(role=steward, idp_group="hr-analytics", actor=owner_membership)
        # payroll-2026 is restricted: no role is cleared for it tenant-wide except Owner, so this explicit
        # grant is how the Data steward role (and only it, among the others) reads it.
        access_services.grant_assign(action="dataset.read", obj=payroll, role=steward, actor=owner_membership)
        self.created.append(f"{tenant.slug}: 3 datasets, 2 models, 2 tools, Data steward reads payroll-2026")

    # --- tenants ---------------------------------------------------------------------------

    def _tenant(self, spec: demo.DemoTenant, *, staff: User, reset_passwords: bool) -> None:
        owner_spec, *others = spec.people
        owner = self._user(owner_spec, reset_password=reset_passwords)
        people = {p.email: self._user(p, reset_password=reset_passwords) for p in others if not p.pending}

        tenant = selectors.tenant_get(slug=spec.slug)
        new_tenant = False
        if tenant is None:
            tenant = platform_services.tenant_provision(
                slug=spec.slug, name=spec.name, owner_email=owner.email, actor=staff
            )
            self.created.append(f"tenant {spec.slug} ({spec.name}), created by {staff.email}")
            # The owner signed in once (after a typo) to accept: the audit log shows both.
            account_services.record_sign_in_failure(identifier=owner.email)
            account_services.record_sign_in(user=owner, method="password", success=True)
            new_tenant = True

        memberships = {m.user.email: m for m in selectors.member_list(tenant=tenant)}
        for person in spec.people:
            membership = memberships.get(person.email)
            if membership is None:
                # The owner invites everyone else (the no-escalation rule checks it); the owner came with the tenant.
                actor = None if person is owner_spec else selectors.member_list(tenant=tenant).get(user=owner)
                membership = member_services.member_invite(
                    tenant=tenant, email=person.email, role=person.role, actor=actor
                )
                self.created.append(f"{spec.slug}: invited {person.email} as {person.role}")
            if not person.pending and membership.status == Membership.Status.INVITED:
                user = owner if person is owner_spec else people[person.email]
                services.membership_accept(membership=membership, user=user)
                self.created.append(f"{spec.slug}: {person.email} joined as {membership.role}")
        if new_tenant and spec.slug == "acme":
            self._catalog(tenant, owner)
