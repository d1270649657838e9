"""The shared cast: tenant Acme with owner, admin, member, viewer; an outsider; tenant Globex."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.test import Client

from apps.accounts.models import User
from apps.tenants.models import Membership, Tenant
from tests.factories import MembershipFactory, TenantFactory, UserFactory

PASSWORD = "correct horse battery staple"


@dataclass
class Cast:
    acme: Tenant
    globex: Tenant
    owner: User
    admin: User
    member: User
    viewer: User
    outsider: User
    globex_owner: User
    staff: User


@pytest.fixture
def cast(db: None) -> Cast:
    acme = TenantFactory(slug="acme", name="Acme Corp")
    globex = TenantFactory(slug="globex", name="Globex")
    users = {}
    for role in ("owner", "admin", "member", "viewer"):
        users[role] = UserFactory(email=f"{role}@acme.example")
        MembershipFactory(tenant=acme, user=users[role], role=role)
    outsider = UserFactory(email="outsider@elsewhere.example")
    globex_owner = UserFactory(email="owner@globex.example")
    MembershipFactory(tenant=globex, user=globex_owner, role=Membership.Role.OWNER)
    staff = UserFactory(email="staff@bastion.example", is_staff=True)
    return Cast(acme=acme, globex=globex, outsider=outsider, globex_owner=globex_owner, staff=staff, **users)


@pytest.fixture
def client_for(db: None):
    """Return a logged-in test client for a user (session login, no password round trip)."""

    def make(user: User) -> Client:
        client = Client()
        client.force_login(user)
        return client

    return make
