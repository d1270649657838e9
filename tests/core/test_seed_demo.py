"""``manage.py seed_demo``: the demo installation, idempotent, with people who can sign in."""

from __future__ import annotations

from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.core.management import call_command
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.platform.management import demo
from apps.tenants.models import Membership, Tenant
from tests.accounts.helpers import enrol_totp, totp_code

pytestmark = pytest.mark.django_db


def seed(*args: str) -> str:
    out = StringIO()
    call_command("seed_demo", *args, stdout=out)
    return out.getvalue()


def snapshot() -> dict[str, object]:
    return {
        "users": sorted(User.objects.values_list("email", "password", "is_staff", "is_active")),
        "tenants": sorted(Tenant.objects.values_list("slug", "name", "status")),
        "memberships": sorted(Membership.objects.values_list("tenant__slug", "user__email", "role", "status")),
        "emails": sorted(EmailAddress.objects.values_list("email", "verified", "primary")),
        "audit_events": AuditEvent.objects.count(),
    }


def sign_in(email: str, password: str) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"login": email, "password": password})
    assert response.status_code == 302, response.content.decode()[:2000]
    assert client.session.get("_auth_user_id") == str(User.objects.get(email=email).pk)
    return client


def test_seed_creates_the_demo_installation():
    output = seed()
    assert "Demo data created" in output
    assert demo.OWNER_PASSWORD in output  # the credentials are announced

    acme = Tenant.objects.get(slug="acme")
    assert acme.name == "Acme Corp"
    members = {m.user.email: (m.role, m.status) for m in Membership.objects.for_tenant(acme).select_related("user")}
    assert members == {
        "owner@acme.example": ("owner", "active"),
        "admin@acme.example": ("admin", "active"),
        "dev@acme.example": ("developer", "active"),
        "viewer@acme.example": ("viewer", "active"),
        "new.hire@acme.example": ("member", "invited"),
    }
    globex = Tenant.objects.get(slug="globex")
    assert [(m.user.email, m.role, m.status) for m in Membership.objects.for_tenant(globex).select_related("user")] == [
        ("owner@globex.example", "owner", "active")
    ]
    staff = User.objects.get(email=demo.STAFF.email)
    assert staff.is_staff
    assert not staff.is_superuser
    assert not User.objects.get(email="new.hire@acme.example").has_usable_password()

    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"tenant.create", "member.invite", "member.join", "auth.sign_in"} <= actions
    assert AuditEvent.objects.filter(action="auth.sign_in", result="failure").exists()
    assert AuditEvent.objects.for_tenant(acme).filter(action="member.join").count() == 4


def test_seed_is_idempotent():
    seed()
    before = snapshot()
    output = seed()
    assert snapshot() == before
    assert "nothing changed" in output


def test_demo_owner_and_staff_can_sign_in():
    seed()
    # Administrators and staff signing in with a password must enrol a second factor first.
    owner = sign_in("owner@acme.example", demo.OWNER_PASSWORD)
    assert owner.get("/t/acme/")["Location"] == "/accounts/2fa/totp/activate/"
    staff = sign_in(demo.STAFF.email, demo.STAFF_PASSWORD)
    assert staff.get("/platform/")["Location"] == "/accounts/2fa/totp/activate/"
    # With a TOTP device enrolled, the same sign-in reaches the console after the code.
    secret = enrol_totp(User.objects.get(email="owner@acme.example"))
    client = Client()
    response = client.post("/accounts/login/", {"login": "owner@acme.example", "password": demo.OWNER_PASSWORD})
    assert response.status_code == 302
    response = client.post(response["Location"], {"code": totp_code(secret)})
    assert response.status_code == 302
    assert client.get("/t/acme/").status_code == 200
    sign_in("viewer@acme.example", demo.MEMBER_PASSWORD)


def test_reset_passwords_restores_demo_credentials():
    seed()
    owner = User.objects.get(email="owner@acme.example")
    owner.set_password("someone-changed-it-locally")
    owner.save()
    before = AuditEvent.objects.count()

    output = seed("--reset-passwords")
    assert "password reset for owner@acme.example" in output
    assert AuditEvent.objects.count() == before  # no tenant or membership was touched
    sign_in("owner@acme.example", demo.OWNER_PASSWORD)


def test_seed_leaves_existing_changes_alone():
    """A re-run does not fight what someone did in the console (e.g. a role change)."""
    seed()
    acme = Tenant.objects.get(slug="acme")
    Membership.objects.for_tenant(acme).filter(user__email="viewer@acme.example").update(role="member")
    seed()
    assert Membership.objects.for_tenant(acme).get(user__email="viewer@acme.example").role == "member"
