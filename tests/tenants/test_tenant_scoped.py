"""Every model with a tenant is read through ``for_tenant``; platform rows (null tenant) never mix with a tenant's."""

from __future__ import annotations

import pytest
from django.apps import apps

from apps.sso import selectors as sso_selectors
from apps.sso.models import SignInPolicy, SSOConnection, VerifiedDomain
from apps.tenants.models import OptionalTenantOwned, TenantOwned, TenantScoped
from tests.sso import saml_helpers as h


def _models_with_a_tenant() -> list[type]:
    found = []
    for model in apps.get_models():
        try:
            model._meta.get_field("tenant")
        except Exception:  # noqa: BLE001, S112 -- FieldDoesNotExist: no tenant, nothing to check
            continue
        found.append(model)
    return found


def test_every_model_with_a_tenant_foreign_key_has_for_tenant_on_its_default_manager() -> None:
    missing = [m._meta.label for m in _models_with_a_tenant() if not hasattr(m._default_manager, "for_tenant")]

    assert missing == []


def test_the_sso_models_with_a_nullable_tenant_are_tenant_scoped() -> None:
    for model in (SSOConnection, VerifiedDomain, SignInPolicy):
        assert issubclass(model, OptionalTenantOwned)
        assert issubclass(model, TenantScoped)
        assert model._meta.get_field("tenant").null
    assert issubclass(TenantOwned, TenantScoped)
    assert not issubclass(SSOConnection, TenantOwned)


@pytest.mark.django_db
def test_for_tenant_none_is_the_platform_and_never_a_tenants_row(cast) -> None:
    acme_connection = h.make_connection(tenant=cast.acme)
    platform_connection = h.make_connection(tenant=cast.acme)
    SSOConnection.objects.filter(pk=platform_connection.pk).update(tenant=None)
    VerifiedDomain.objects.create(tenant=cast.acme, domain="acme.example")
    VerifiedDomain.objects.create(tenant=None, domain="bastion.example")

    assert list(SSOConnection.objects.for_tenant(None)) == [platform_connection]
    assert list(SSOConnection.objects.for_tenant(cast.acme)) == [acme_connection]
    assert list(SSOConnection.objects.for_tenant(cast.acme.pk)) == [acme_connection]
    assert not SSOConnection.objects.for_tenant(cast.globex).exists()
    assert [d.domain for d in VerifiedDomain.objects.for_tenant(None)] == ["bastion.example"]
    assert [d.domain for d in VerifiedDomain.objects.for_tenant(cast.acme)] == ["acme.example"]
    # The platform's settings pages read through the same selectors: a tenant's connection is not there.
    assert list(sso_selectors.connection_list(tenant=None)) == [platform_connection]
    assert sso_selectors.connection_get(tenant=None, connection_id=acme_connection.pk) is None
    assert sso_selectors.connection_get(tenant=cast.globex, connection_id=acme_connection.pk) is None


@pytest.mark.django_db
def test_a_required_tenant_model_has_no_platform_rows(cast) -> None:
    from apps.tenants.models import Membership

    assert Membership.objects.for_tenant(cast.acme).exists()
    assert not Membership.objects.for_tenant(None).exists()
