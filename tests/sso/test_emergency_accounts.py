"""Emergency accounts, the Owner's side (#11, item 8): create, show once, rotate, disable, delete, acknowledge.

Pages under /t/<slug>/sso/emergency/ declare ``sso.manage`` (the contract below
for the pages that read); every change is for Owners only, decided in the
service: an admin who holds ``sso.manage`` gets 403 and nothing changes.
Another tenant's account or sign-in id in any URL answers 404.
"""

from __future__ import annotations

import dataclasses
import json
import logging

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth.hashers import check_password
from django.test import Client

from apps.accounts.models import User
from apps.audit.models import AuditEvent
from apps.sso import emergency
from apps.sso.models import EmergencyAccount, EmergencySignIn
from apps.sso.services import emergency as services
from apps.tenants.models import Membership
from tests.contract import PageContract, PermissionContract, Ref

pytestmark = pytest.mark.django_db

BASE = "/t/acme/sso/emergency/"


def membership(tenant, user) -> Membership:
    return Membership.objects.get(tenant=tenant, user=user)


def create(cast, *, label: str = "Safe A", role: str = "owner", tenant=None, owner=None) -> services.Credentials:
    tenant = tenant or cast.acme
    return services.account_create(tenant=tenant, actor=membership(tenant, owner or cast.owner), label=label, role=role)


def owner_client(cast) -> Client:
    client = Client()
    client.force_login(cast.owner)
    return client


@pytest.fixture
def world(cast):
    """Acme and Globex each with an emergency account and one unacknowledged sign-in."""
    cast.mine = create(cast).account
    cast.theirs = create(cast, tenant=cast.globex, owner=cast.globex_owner, label="Globex safe").account
    cast.my_sign_in = EmergencySignIn.objects.create(tenant=cast.acme, account=cast.mine, label="Safe A", login="x")
    cast.their_sign_in = EmergencySignIn.objects.create(
        tenant=cast.globex, account=cast.theirs, label="Globex safe", login="y"
    )
    return cast


class TestEmergencyPagesContract(PermissionContract):
    """Reading pages: sso.manage (admins may look); another tenant's account id → 404."""

    contracts = (
        PageContract("sso_emergency:list", "sso.manage"),
        PageContract("sso_emergency:create", "sso.manage"),
        PageContract(
            "sso_emergency:rotate",
            "sso.manage",
            kwargs={"account_id": Ref("mine")},
            foreign=({"account_id": Ref("theirs")},),
        ),
        PageContract(
            "sso_emergency:delete",
            "sso.manage",
            kwargs={"account_id": Ref("mine")},
            foreign=({"account_id": Ref("theirs")},),
        ),
    )

    @pytest.fixture
    def contract_world(self, world):
        return world

    def state(self, world):
        return (
            super().state(world),
            tuple(EmergencyAccount.objects.order_by("pk").values_list("pk", "disabled_at", "rotated_at")),
        )


# --- creation: shown once --------------------------------------------------------------------


def test_owner_creates_an_account_and_sees_its_credentials_once(cast, caplog):
    client = owner_client(cast)
    caplog.set_level(logging.DEBUG)
    response = client.post(f"{BASE}new/", {"label": "Safe in HQ, envelope A", "role": "owner"})
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    account = EmergencyAccount.objects.get(tenant=cast.acme)
    user = account.user
    page = response.content.decode()
    password = page.split('id="emergency-password">')[1].split("<")[0]
    secret = page.split('id="emergency-totp-secret">')[1].split("<")[0]
    assert len(password) >= 30
    assert check_password(password, user.password)
    assert user.password != password
    assert password not in user.password
    assert Authenticator.objects.filter(user=user, type="totp").count() == 1
    assert user.email.startswith("break-glass-")
    assert user.email.endswith(f"@acme.{emergency.login_domain()}")
    assert membership(cast.acme, user).role == "owner"
    assert membership(cast.acme, user).status == "active"
    assert list(Membership.objects.filter(user=user).values_list("tenant__slug", flat=True)) == ["acme"]

    # Not retrievable later: not on the list, not in the audit log, the session, the logs.
    listing = client.get(BASE).content.decode()
    assert user.email in listing
    assert password not in listing
    assert secret not in listing
    dumped = json.dumps(list(AuditEvent.objects.values("metadata", "actor_display", "target_id")), default=str)
    assert password not in dumped
    assert secret not in dumped
    assert AuditEvent.objects.filter(
        action="sso.emergency_account_create", tenant=cast.acme, metadata__severity="high"
    ).exists()
    session_blob = json.dumps(dict(client.session.items()), default=str)
    assert password not in session_blob
    assert secret not in session_blob
    assert password not in caplog.text
    assert secret not in caplog.text
    assert password not in repr(services.Credentials(account, "l", password, secret, "u"))


def test_a_non_owner_admin_cannot_create_one(cast):
    client = Client()
    client.force_login(cast.admin)  # holds sso.manage, not the owner role
    before = AuditEvent.objects.count()
    response = client.post(f"{BASE}new/", {"label": "Mine", "role": "admin"})
    assert response.status_code == 403
    assert "Only an Owner" in response.content.decode()
    assert not EmergencyAccount.objects.exists()
    assert AuditEvent.objects.count() == before
    with pytest.raises(services.EmergencyError) as refused:
        services.account_create(tenant=cast.acme, actor=membership(cast.acme, cast.admin), label="x")
    assert refused.value.forbidden
    # The page itself opens (sso.manage) and says why there is no form.
    page = client.get(f"{BASE}new/")
    assert page.status_code == 200
    assert "Only an Owner" in page.content.decode()
    assert 'name="label"' not in page.content.decode()


def test_an_owner_of_another_tenant_cannot_create_one_here(cast):
    with pytest.raises(services.EmergencyError):
        services.account_create(tenant=cast.acme, actor=membership(cast.globex, cast.globex_owner), label="x")
    assert not EmergencyAccount.objects.exists()


def test_an_emergency_account_cannot_manage_emergency_accounts(cast):
    """Whoever holds its credentials must not hide their own use: it is no Owner for these rules."""
    account = create(cast).account
    own = membership(cast.acme, account.user)
    assert own.role == "owner"
    assert not emergency.is_owner(own)
    with pytest.raises(services.EmergencyError):
        services.account_create(tenant=cast.acme, actor=own, label="second")
    sign_in = EmergencySignIn.objects.create(tenant=cast.acme, account=account, label=account.label, login="x")
    with pytest.raises(services.EmergencyError):
        services.sign_in_acknowledge(sign_in=sign_in, actor=own)


def test_a_role_above_the_creators_is_refused(cast, monkeypatch):
    """The role goes through the no-escalation rule of apps.access.members (an Owner short of a permission)."""
    from apps.access import permsets

    real = permsets.for_membership

    def short_of_billing(member):
        held = real(member)
        if member.user_id == cast.owner.pk:
            return dataclasses.replace(held, actions={k: v for k, v in held.actions.items() if k != "billing.manage"})
        return held

    monkeypatch.setattr(permsets, "for_membership", short_of_billing)
    with pytest.raises(services.EmergencyError) as refused:
        create(cast, role="owner")
    assert "billing.manage" in refused.value.message
    assert refused.value.field == "role"
    assert not EmergencyAccount.objects.exists()
    assert not User.objects.filter(email__endswith=emergency.login_domain()).exists()
    create(cast, role="admin")  # a role within what they hold is fine


def test_bad_input_is_a_form_error_and_nothing_is_saved(cast):
    client = owner_client(cast)
    create(cast, label="Safe A")
    for data, needle in (
        ({"label": "", "role": "owner"}, "This field is required"),
        ({"label": "x" * 61, "role": "owner"}, "at most 60"),
        ({"label": "safe a", "role": "owner"}, "already exists"),
        ({"label": "Other", "role": "superuser"}, "Select a valid choice"),
    ):
        response = client.post(f"{BASE}new/", data)
        assert response.status_code == 400, data
        assert needle in response.content.decode(), data
    assert EmergencyAccount.objects.count() == 1


# --- rotate, disable, delete -----------------------------------------------------------------


def test_rotate_invalidates_the_old_password_factor_and_sessions(cast):
    from allauth.usersessions.models import UserSession

    old = create(cast)
    user = old.account.user
    session_client = Client()
    session_client.force_login(user)
    UserSession.objects.create(user=user, ip="127.0.0.1", session_key=session_client.session.session_key)
    response = owner_client(cast).post(f"{BASE}{old.account.pk}/rotate/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    user.refresh_from_db()
    page = response.content.decode()
    new_password = page.split('id="emergency-password">')[1].split("<")[0]
    assert not user.check_password(old.password)
    assert user.check_password(new_password)
    totp = Authenticator.objects.get(user=user, type="totp")
    from allauth.mfa.utils import decrypt

    assert decrypt(totp.data["secret"]) != old.totp_secret
    assert not UserSession.objects.filter(user=user).exists()
    assert user.sessions_revoked_at is not None
    assert session_client.get("/t/acme/").status_code == 302  # the open session ended
    event = AuditEvent.objects.get(action="sso.emergency_account_rotate", tenant=cast.acme)
    assert event.metadata["severity"] == "high"
    assert new_password not in json.dumps(event.metadata)


def test_disable_refuses_sign_in_and_enable_gives_it_back(cast):
    account = create(cast).account
    client = owner_client(cast)
    assert client.post(f"{BASE}{account.pk}/disable/").status_code == 302
    account.refresh_from_db()
    assert account.is_disabled
    assert not User.objects.get(pk=account.user_id).is_active
    assert AuditEvent.objects.filter(action="sso.emergency_account_disable", tenant=cast.acme).exists()
    assert client.post(f"{BASE}{account.pk}/enable/").status_code == 302
    account.refresh_from_db()
    assert not account.is_disabled
    assert User.objects.get(pk=account.user_id).is_active


def test_delete_ends_sessions_and_removes_user_and_membership(cast, django_capture_on_commit_callbacks):
    account = create(cast).account
    user_id = account.user_id
    with django_capture_on_commit_callbacks(execute=True):
        response = owner_client(cast).post(f"{BASE}{account.pk}/delete/")
    assert response.status_code == 302
    assert not EmergencyAccount.objects.exists()
    assert not User.objects.filter(pk=user_id).exists()
    assert not Membership.objects.filter(user_id=user_id).exists()
    assert AuditEvent.objects.filter(action="sso.emergency_account_delete", tenant=cast.acme).exists()
    assert AuditEvent.objects.filter(action="auth.sign_out_everywhere", target_id=str(user_id)).exists()


def test_admin_posts_are_refused_and_change_nothing(world):
    client = Client()
    client.force_login(world.admin)
    before = (AuditEvent.objects.count(), EmergencyAccount.objects.get(pk=world.mine.pk).user.password)
    for url in (
        f"{BASE}{world.mine.pk}/rotate/",
        f"{BASE}{world.mine.pk}/disable/",
        f"{BASE}{world.mine.pk}/delete/",
        f"{BASE}sign-ins/{world.my_sign_in.pk}/acknowledge/",
    ):
        assert client.post(url).status_code == 403, url
    world.mine.refresh_from_db()
    world.my_sign_in.refresh_from_db()
    assert (AuditEvent.objects.count(), world.mine.user.password) == before
    assert not world.mine.is_disabled
    assert world.my_sign_in.acknowledged_at is None


@pytest.mark.parametrize("action", ["rotate", "disable", "enable", "delete"])
def test_another_tenants_account_id_is_404_and_nothing_changes(world, action):
    before = (AuditEvent.objects.count(), world.theirs.user.password, world.theirs.disabled_at)
    response = owner_client(world).post(f"{BASE}{world.theirs.pk}/{action}/")
    assert response.status_code == 404
    world.theirs.refresh_from_db()
    assert (AuditEvent.objects.count(), world.theirs.user.password, world.theirs.disabled_at) == before
    assert "Globex" not in response.content.decode()


def test_another_tenants_sign_in_id_is_404(world):
    response = owner_client(world).post(f"{BASE}sign-ins/{world.their_sign_in.pk}/acknowledge/")
    assert response.status_code == 404
    world.their_sign_in.refresh_from_db()
    assert world.their_sign_in.acknowledged_at is None


@pytest.mark.parametrize("bad", ["0", "999999999", "99999999999999999999999"])
def test_unknown_ids_are_404(world, bad):
    client = owner_client(world)
    assert client.post(f"{BASE}{bad}/rotate/").status_code == 404
    assert client.post(f"{BASE}sign-ins/{bad}/acknowledge/").status_code == 404


def test_a_bad_history_cursor_shows_the_first_page(world):
    response = owner_client(world).get(f"{BASE}?cursor=%%%not-a-cursor")
    assert response.status_code == 200
    assert "not valid" in response.content.decode()


def test_no_tenant_can_claim_the_emergency_login_domain(cast):
    from apps.sso.services import SSOInputError, domain_claim

    for name in (emergency.login_domain(), f"acme.{emergency.login_domain()}"):
        with pytest.raises(SSOInputError):
            domain_claim(tenant=cast.globex, domain=name, actor=cast.globex_owner)


# --- platform staff see which tenants have them ------------------------------------------------


def test_staff_connections_page_lists_tenants_with_emergency_accounts(world):
    client = Client()
    client.force_login(world.staff)
    response = client.get("/platform/sso/tenant-connections/")
    page = response.content.decode()
    assert response.status_code == 200
    assert "Tenants' emergency accounts" in page
    assert "Acme Corp" in page
    assert "Globex" in page
    assert world.mine.user.email not in page  # staff see that they exist, not how to use them
    filtered = client.get("/platform/sso/tenant-connections/?q=glob").content.decode()
    section = filtered.split('id="emergency-accounts"')[1]
    assert "Globex" in section
    assert "Acme Corp" not in section


def test_settings_page_links_to_emergency_accounts(cast):
    page = owner_client(cast).get("/t/acme/settings/sso/").content.decode()
    assert 'href="/t/acme/sso/emergency/"' in page


def test_the_dashboard_card_costs_one_query_when_nothing_waits(cast, django_assert_num_queries):
    from apps.sso.dashboard import emergency_sign_ins_card

    request = type("R", (), {})()
    request.tenant = cast.acme
    request.membership = membership(cast.acme, cast.owner)
    request.can = lambda action: action == "sso.manage"
    with django_assert_num_queries(1):
        assert emergency_sign_ins_card(request) is None
    request.can = lambda action: False
    with django_assert_num_queries(0):
        assert emergency_sign_ins_card(request) is None
