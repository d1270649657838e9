"""One primary connection per tenant; domains routed to a connection (#9, item 4).

Before: with two enabled connections, discovery and the password-refusal message
took the first by name. Attacks: routing a domain to another tenant's IdP, two
primaries or a disabled primary slipping past the service (the database refuses).
"""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from apps.sso import services
from apps.sso.models import SSOConnection
from apps.sso.policy import password_sign_in_check
from apps.sso.services import SSOInputError
from tests.sso.test_flow_support import events, https_client, saml_connection, verify_domain

pytestmark = pytest.mark.django_db


def _enabled(tenant, name: str) -> SSOConnection:
    connection = saml_connection(tenant)
    SSOConnection.objects.filter(pk=connection.pk).update(name=name)
    services.primary_ensure(tenant_id=tenant.pk if tenant else None)
    connection.refresh_from_db()
    return connection


@pytest.fixture
def two(cast):
    okta = _enabled(cast.acme, "Okta")  # enabled first: primary
    acme_oidc = _enabled(cast.acme, "Acme OIDC")  # sorts first by name
    domain = verify_domain(cast.acme, "acme.example")
    return okta, acme_oidc, domain


def test_discovery_and_the_refusal_use_the_primary_not_the_first_name(cast, two) -> None:
    okta, acme_oidc, _domain = two
    assert okta.is_primary
    assert not acme_oidc.is_primary

    assert services.connection_for_email("ada@acme.example") == okta
    assert "Sign in with Okta" in password_sign_in_check(cast.admin).message

    services.connection_make_primary(connection=acme_oidc, actor=cast.admin)

    assert services.connection_for_email("ada@acme.example") == acme_oidc
    assert "Sign in with Acme OIDC" in password_sign_in_check(cast.admin).message
    okta.refresh_from_db()
    assert not okta.is_primary
    assert events("sso.connection_primary", tenant=cast.acme)


def test_a_routed_domain_uses_its_connection_while_enabled(cast, two) -> None:
    okta, acme_oidc, domain = two
    admin = https_client(cast.admin)

    admin.post(f"/t/acme/settings/sso/connections/{acme_oidc.pk}/route/", {"domain": domain.pk})

    assert services.connection_for_email("ada@acme.example") == acme_oidc
    (event,) = events("sso.domain_route", tenant=cast.acme)
    assert event.metadata["after"]["connection"] == acme_oidc.pk
    services.connection_set_status(connection=acme_oidc, enabled=False, actor=cast.admin)
    assert services.connection_for_email("ada@acme.example") == okta  # back to the primary


def test_a_domain_cannot_be_routed_to_another_tenants_connection(cast, two) -> None:
    _okta, _acme_oidc, domain = two
    globex = _enabled(cast.globex, "Globex IdP")

    with pytest.raises(SSOInputError):
        services.domain_route(tenant=cast.acme, domain=domain, connection=globex, actor=cast.admin)
    with pytest.raises(SSOInputError):
        services.domain_route(tenant=cast.globex, domain=domain, connection=globex, actor=cast.globex_owner)
    # Through the console: Globex's owner names Acme's domain on their own connection.
    https_client(cast.globex_owner).post(
        f"/t/globex/settings/sso/connections/{globex.pk}/route/", {"domain": domain.pk}
    )

    domain.refresh_from_db()
    assert domain.connection_id is None
    assert services.connection_for_email("ada@acme.example").tenant_id == cast.acme.pk


def test_disabling_or_changing_the_primary_promotes_another(cast, two) -> None:
    okta, acme_oidc, _domain = two

    services.connection_set_status(connection=okta, enabled=False, actor=cast.admin)

    acme_oidc.refresh_from_db()
    assert acme_oidc.is_primary
    with pytest.raises(SSOInputError):
        services.connection_make_primary(connection=okta, actor=cast.admin)  # disabled: cannot be primary


def test_the_database_refuses_two_primaries_or_a_disabled_primary(cast, two) -> None:
    okta, acme_oidc, _domain = two

    with pytest.raises(IntegrityError), transaction.atomic():
        SSOConnection.objects.filter(pk=acme_oidc.pk).update(is_primary=True)
    with pytest.raises(IntegrityError), transaction.atomic():
        SSOConnection.objects.filter(pk=okta.pk).update(status=SSOConnection.Status.DISABLED)


def test_the_platform_has_one_primary_too(cast) -> None:
    first = SSOConnection.objects.create(tenant=None, kind="saml", name="A", status="enabled", is_primary=True)

    with pytest.raises(IntegrityError), transaction.atomic():
        SSOConnection.objects.create(tenant=None, kind="saml", name="B", status="enabled", is_primary=True)
    assert first.is_primary
