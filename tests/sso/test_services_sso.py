"""SSO services without the browser: secret encryption, domains, deprovisioning, platform connections."""

from __future__ import annotations

import pytest
from django.test import RequestFactory
from django.utils import timezone

from apps.sso import crypto, services
from apps.sso.models import ExternalIdentity, SSOConnection, VerifiedDomain
from apps.sso.services import SSOInputError
from apps.sso.types import Assertion, SSOConfigError, SSOError
from apps.tenants.models import Membership
from tests.sso.test_flow_support import events, saml_connection, verify_domain

# --- crypto ----------------------------------------------------------------------------------------


def test_encrypt_round_trip_and_empty() -> None:
    token = crypto.encrypt("s3cret")

    assert token != "s3cret"
    assert "s3cret" not in token
    assert crypto.decrypt(token) == "s3cret"
    assert crypto.encrypt("") == ""
    assert crypto.decrypt("") == ""


def test_dedicated_key_and_rotation(settings) -> None:
    derived = crypto.encrypt("from SECRET_KEY")
    settings.SSO_SECRET_KEY = "a dedicated key that is not a fernet key"

    token = crypto.encrypt("dedicated")

    assert crypto.decrypt(token) == "dedicated"
    assert crypto.decrypt(derived) == "from SECRET_KEY"  # the SECRET_KEY-derived key still opens old values
    assert crypto.needs_rotation(derived)
    assert not crypto.needs_rotation(token)
    settings.SSO_SECRET_KEY = "another key"
    with pytest.raises(SSOConfigError, match="enter it again"):
        crypto.decrypt(token)
    settings.SSO_SECRET_KEY_FALLBACKS = ["a dedicated key that is not a fernet key"]
    assert crypto.decrypt(token) == "dedicated"


def test_secret_key_rotation_keeps_old_values_readable(settings) -> None:
    token = crypto.encrypt("value")
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-brand-new-secret-key-0123456789abcdef-0123456789"

    assert crypto.decrypt(token) == "value"


def test_tampered_token_is_refused() -> None:
    token = crypto.encrypt("value")

    with pytest.raises(SSOConfigError):
        crypto.decrypt(token[:-4] + "AAAA")


# --- domains ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Acme.COM", "acme.com"),
        ("@acme.com", "acme.com"),
        ("acme.com.", "acme.com"),
        ("bücher.example", "xn--bcher-kva.example"),
    ],
)
def test_normalize_domain(value, expected) -> None:
    assert services.normalize_domain(value) == expected


@pytest.mark.parametrize(
    "value", ["", "com", "-acme.com", "acme..com", "a" * 64 + ".com", "https://acme.com", "10.0.0.1"]
)
def test_normalize_domain_refuses(value) -> None:
    with pytest.raises(SSOInputError):
        services.normalize_domain(value)


def test_email_domain() -> None:
    assert services.email_domain("Ada@Acme.Example") == "acme.example"
    assert services.email_domain("no-at-sign") == ""
    assert services.email_domain("a@b@c.example") == ""


@pytest.mark.django_db
def test_domain_verify_is_staff_only(cast) -> None:
    claim = services.domain_claim(tenant=cast.acme, domain="acme.example", actor=cast.admin)

    with pytest.raises(SSOInputError):
        services.domain_verify(domain=claim, actor=cast.owner, reason="ticket 1")
    with pytest.raises(SSOInputError):  # the override is explicit: no reason, no verification
        services.domain_verify(domain=claim, actor=cast.staff, reason="  ")
    verified = services.domain_verify(domain=claim, actor=cast.staff, reason="ticket 1")

    assert verified.verified_by == cast.staff
    assert (verified.verified_method, verified.verified_note) == ("staff", "ticket 1")
    again = services.domain_verify(domain=verified, actor=cast.staff, reason="again")
    assert again.verified_at == verified.verified_at  # idempotent


@pytest.mark.django_db
def test_domain_claim_audit_has_no_token(cast) -> None:
    claim = services.domain_claim(tenant=cast.acme, domain="acme.example", actor=cast.admin)

    (event,) = events("sso.domain_claim", tenant=cast.acme)
    assert claim.dns_token not in str(event.metadata)


# --- sign-in completion without the views -------------------------------------------------------


def _request():
    from django.contrib.sessions.backends.db import SessionStore

    request = RequestFactory().get("/")
    request.session = SessionStore()
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    return request


@pytest.mark.django_db
def test_platform_connection_signs_in_existing_staff_only(cast) -> None:
    VerifiedDomain.objects.create(tenant=None, domain="bastion.example", verified_at=timezone.now())
    connection = SSOConnection.objects.create(
        tenant=None, kind="saml", name="Platform IdP", status=SSOConnection.Status.ENABLED
    )
    cast.staff.set_unusable_password()  # SSO-only staff: a password would need the link confirmed first
    cast.staff.save()

    user = services.complete_sign_in(
        connection=connection,
        assertion=Assertion(subject="staff-1", email="staff@bastion.example", mfa_asserted=True),
        request=_request(),
    )

    assert user == cast.staff
    assert not Membership.objects.filter(user=cast.staff).exists()
    with pytest.raises(SSOError) as refused:
        services.complete_sign_in(
            connection=connection,
            assertion=Assertion(subject="new-1", email="newcomer@bastion.example"),
            request=_request(),
        )
    assert refused.value.code == "platform"


@pytest.mark.django_db
def test_groups_are_cleaned(cast) -> None:
    verify_domain(cast.acme, "acme.example")
    connection = saml_connection(cast.acme)
    groups = ("  eng  ", "eng", "", "x" * 201, "ok\x00bad", "ops")

    services.complete_sign_in(
        connection=connection,
        assertion=Assertion(subject="ada", email="ada@acme.example", groups=groups),
        request=_request(),
    )

    assert Membership.objects.get(tenant=cast.acme, user__email="ada@acme.example").idp_groups == ["eng", "ops"]
    assert ExternalIdentity.objects.get(connection=connection).last_groups == ["eng", "ops"]


@pytest.mark.django_db
def test_suspended_tenant_admits_no_new_members(cast) -> None:
    verify_domain(cast.acme, "acme.example")
    connection = saml_connection(cast.acme)
    cast.acme.status = "suspended"
    cast.acme.save()

    with pytest.raises(SSOError) as refused:
        services.complete_sign_in(
            connection=connection, assertion=Assertion(subject="ada", email="ada@acme.example"), request=_request()
        )

    assert refused.value.code == "tenant_suspended"
    assert not Membership.objects.filter(user__email="ada@acme.example").exists()
